# Sourced by the scripts: the tools setup installed come first on PATH
# (binaryen's wasm-opt from end2end/node_modules, cargo's bin directory).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$root/end2end/node_modules/.bin:$HOME/.cargo/bin:$PATH"
cd "$root"
