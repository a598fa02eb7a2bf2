# Sourced by the scripts: the tools setup installed come first on PATH
# (binaryen's wasm-opt from end2end/node_modules, cargo's bin directory).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$root/end2end/node_modules/.bin:$HOME/.cargo/bin:$PATH"
cd "$root"

# Starts `migctl demo` (the binary in $bin) in DIR with any further demo
# flags, waits until it answers, and sets `demo` (its pid), `url` and
# `token` (an API token of a new user with ROLE). Set `demo=` and a trap
# that kills "$demo" before calling.
demo_console() { # DIR ROLE [demo flags…]
  local dir=$1 role=$2
  shift 2
  "$bin" demo --dir "$dir" --listen 127.0.0.1:0 "$@" > "$dir/demo.out" 2> "$dir/demo.err" &
  demo=$!
  # A debug console filling a large shop takes a while (~10 s a 100 MiB).
  for _ in $(seq 900); do
    grep -q '^password: ' "$dir/demo.out" 2> /dev/null && break
    kill -0 "$demo" 2> /dev/null || break
    sleep 0.2
  done
  url=$(sed -n 's/^url: //p' "$dir/demo.out" | sed 's#/$##')
  if [ -z "$url" ]; then
    cat "$dir/demo.err" >&2
    echo "the demo console did not start within 3 minutes (or exited): $dir/demo.err above" >&2
    return 1
  fi
  "$bin" --config-dir "$dir" user add "script-$role" --role "$role" > /dev/null
  token=$("$bin" --config-dir "$dir" user token "script-$role" 2> /dev/null)
}
