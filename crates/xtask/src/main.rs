//! `cargo xtask build`: the one build path of the console — what the demo, the
//! tests, CI and the docs use. It does for migctl what cargo-leptos did, with
//! no tool to compile first: the hydrate entry to wasm (cargo), its JS glue
//! (wasm-bindgen, linked in as a library), the wasm shrunk (binaryen's
//! `wasm-opt`, which `scripts/setup` installs from npm), the stylesheet, file
//! names that carry a hash of their contents (`hash.txt` beside the binary,
//! read by Leptos), then the server's binary: the release build, or with
//! `--dev` the debug build (what `cargo test` builds too: the demo and the
//! test harnesses start in minutes instead of a quarter of an hour).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// The name the pages ask for (`LeptosOptions::output_name` in the server).
const OUTPUT_NAME: &str = "migctl";
const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// The wasm bundle's own profile (root `Cargo.toml`): small, slow to build.
const WASM_PROFILE: &str = "wasm-release";
const STYLESHEET: &str = "style/main.css";

const USAGE: &str = "usage: cargo xtask build [--dev | --site-only]

  build              the site (target/site) and the release console
                     (target/release/migctl with its hash.txt): what ships
  build --dev        the site and the debug console (target/debug/migctl with
                     its hash.txt): the demo's and the tests' build
  build --site-only  the site alone: the wasm bundle, its JS and the stylesheet";

/// Which console binary a build makes, and so where its `hash.txt` goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Server {
    Release,
    Dev,
    None,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = match args.as_slice() {
        ["build"] => Server::Release,
        ["build", "--dev"] => Server::Dev,
        ["build", "--site-only"] => Server::None,
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            return Ok(());
        }
        _ => bail!("{USAGE}"),
    };
    let dirs = Dirs::find();
    let start = Instant::now();
    build_site(&dirs, server)?;
    let built = match server {
        Server::Release => {
            stage("server (release)", || {
                cargo(
                    &dirs,
                    &[
                        "build",
                        "--release",
                        "--package",
                        "server",
                        "--bin",
                        "migctl",
                    ],
                )
            })?;
            "the site and target/release/migctl"
        }
        Server::Dev => {
            stage("server (debug)", || {
                cargo(&dirs, &["build", "--package", "server", "--bin", "migctl"])
            })?;
            "the site and target/debug/migctl"
        }
        Server::None => "the site",
    };
    println!("xtask: built {built} in {}", elapsed(start));
    Ok(())
}

struct Dirs {
    root: PathBuf,
    target: PathBuf,
}

impl Dirs {
    fn find() -> Dirs {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let root = root.canonicalize().unwrap_or(root);
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        Dirs { root, target }
    }
    fn site_pkg(&self) -> PathBuf {
        self.target.join("site/pkg")
    }
    /// Leptos reads `hash.txt` from the directory of the running binary.
    fn hash_file(&self, server: Server) -> PathBuf {
        let profile = if server == Server::Dev {
            "debug"
        } else {
            "release"
        };
        self.target.join(profile).join("hash.txt")
    }
}

/// One file of the site that gets a hashed name, as `hash.txt` names it.
struct Asset {
    kind: &'static str,
    built_as: String,
    extension: &'static str,
}

fn build_site(dirs: &Dirs, server: Server) -> Result<()> {
    stage("wasm (frontend)", || {
        cargo(
            dirs,
            &[
                "build",
                "--package",
                "frontend",
                "--lib",
                "--target",
                WASM_TARGET,
                "--profile",
                WASM_PROFILE,
            ],
        )
    })?;
    let wasm = dirs
        .target
        .join(WASM_TARGET)
        .join(WASM_PROFILE)
        .join("frontend.wasm");
    let staging = dirs.target.join("site/pkg.new");
    if staging.exists() {
        fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    }
    fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;

    stage("wasm-bindgen", || {
        wasm_bindgen_cli_support::Bindgen::new()
            .input_path(&wasm)
            .out_name(OUTPUT_NAME)
            .typescript(false)
            .web(true)?
            .generate(&staging)
            .with_context(|| format!("generating the JS glue of {}", wasm.display()))
    })?;
    let bundle = staging.join(format!("{OUTPUT_NAME}_bg.wasm"));
    stage("wasm-opt", || wasm_opt(&bundle))?;
    fs::copy(
        dirs.root.join(STYLESHEET),
        staging.join(format!("{OUTPUT_NAME}.css")),
    )
    .with_context(|| format!("copying {STYLESHEET}"))?;

    let assets = [
        Asset {
            kind: "js",
            built_as: format!("{OUTPUT_NAME}.js"),
            extension: "js",
        },
        Asset {
            kind: "wasm",
            built_as: format!("{OUTPUT_NAME}_bg.wasm"),
            extension: "wasm",
        },
        Asset {
            kind: "css",
            built_as: format!("{OUTPUT_NAME}.css"),
            extension: "css",
        },
    ];
    let mut hashes = String::new();
    for asset in &assets {
        let from = staging.join(&asset.built_as);
        let bytes = fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
        let hash = hex::encode(&Sha256::digest(&bytes)[..10]);
        let to = staging.join(format!("{OUTPUT_NAME}.{hash}.{}", asset.extension));
        fs::rename(&from, &to).with_context(|| format!("renaming {}", from.display()))?;
        hashes.push_str(&format!("{}: {hash}\n", asset.kind));
    }

    // The new site replaces the old one whole, then hash.txt names it.
    let pkg = dirs.site_pkg();
    let old = dirs.target.join("site/pkg.old");
    if old.exists() {
        fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    if pkg.exists() {
        fs::rename(&pkg, &old).with_context(|| format!("moving {} aside", pkg.display()))?;
    }
    fs::rename(&staging, &pkg)
        .with_context(|| format!("moving the new site to {}", pkg.display()))?;
    if old.exists() {
        fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    let hash_file = dirs.hash_file(server);
    write_atomically(&hash_file, hashes.as_bytes())?;
    println!(
        "xtask: site in {} ({} of wasm), names in {}",
        pkg.display(),
        size_of(&pkg, "wasm"),
        hash_file.display()
    );
    Ok(())
}

fn wasm_opt(bundle: &Path) -> Result<()> {
    // Debian's binaryen (wasm-opt 108) makes wasm that Chromium rejects;
    // scripts/env.sh puts npm's binaryen 132 first on PATH.
    let status = Command::new("wasm-opt")
        .args([
            "-Oz",
            "--enable-bulk-memory",
            "--enable-nontrapping-float-to-int",
        ])
        .arg(bundle)
        .arg("-o")
        .arg(bundle)
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => bail!("wasm-opt failed ({s}) on {}", bundle.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "wasm-opt is not on PATH: run scripts/setup (it installs binaryen's wasm-opt \
             into end2end/node_modules/.bin) and build through a script that sources scripts/env.sh"
        ),
        Err(e) => Err(e).context("starting wasm-opt"),
    }
}

fn cargo(dirs: &Dirs, args: &[&str]) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .args(args)
        .current_dir(&dirs.root)
        .status()
        .context("starting cargo")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("hash.txt has no directory")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = path.with_extension("txt.new");
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

fn stage<T>(name: &str, work: impl FnOnce() -> Result<T>) -> Result<T> {
    let start = Instant::now();
    println!("xtask: {name}…");
    let out = work().with_context(|| format!("{name} failed"))?;
    println!("xtask: {name} took {}", elapsed(start));
    Ok(out)
}

fn elapsed(start: Instant) -> String {
    let s = start.elapsed().as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", start.elapsed().as_secs_f64())
    }
}

fn size_of(dir: &Path, extension: &str) -> String {
    let bytes: u64 = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == extension))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    format!("{} KiB", bytes / 1024)
}
