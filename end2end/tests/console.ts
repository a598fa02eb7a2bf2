// Starts and stops migctl processes for the browser tests: `migctl demo`
// (simulated grids + console) or `migctl serve` on an existing directory.
// Each listens on a free loopback port; each is stopped by its pid.
import { ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

// The console scripts/test built (cargo xtask build --dev); MIGCTL_BIN names another.
export const BIN = process.env.MIGCTL_BIN ?? resolve(__dirname, "../../target/debug/migctl");

export interface Running {
  url: string;
  user?: string;
  password?: string;
  dir: string;
  child: ChildProcess;
}

/** Runs `migctl ARGS` and waits for the `url:` line (and `user:`/`password:` when `wantLogin`). */
export async function run(args: string[], dir: string, wantLogin: boolean): Promise<Running> {
  const child = spawn(BIN, args, { stdio: ["ignore", "pipe", "inherit"] });
  const found: Record<string, string> = {};
  await new Promise<void>((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`migctl ${args[0]} printed no url within 60 s`)), 60_000);
    child.on("exit", (code) => fail(new Error(`migctl ${args[0]} exited early with ${code}`)));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const m = /^(url|user|password): (.*)$/.exec(line);
      if (m) found[m[1]] = m[2];
      if (found.url && (!wantLogin || (found.user && found.password))) {
        clearTimeout(timer);
        done();
      }
    });
  });
  return { url: found.url.replace(/\/$/, ""), user: found.user, password: found.password, dir, child };
}

/** A fresh `migctl demo`; `rateMiB` slows the copy so a test can watch it; `extra` more flags. */
export async function startDemo(rateMiB?: number, dir?: string, extra: string[] = []): Promise<Running> {
  dir ??= mkdtempSync(join(tmpdir(), "migctl-e2e-"));
  const args = ["demo", "--dir", dir, "--listen", "127.0.0.1:0", ...extra];
  if (rateMiB) args.push("--copy-rate-limit-mib", String(rateMiB));
  return run(args, dir, true);
}

/** A fresh `migctl demo --self`: the console runs inside the app `shop`. */
export async function startSelfDemo(rateMiB?: number): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), "migctl-e2e-self-"));
  const args = ["demo", "--self", "--dir", dir, "--listen", "127.0.0.1:0"];
  if (rateMiB) args.push("--copy-rate-limit-mib", String(rateMiB));
  return run(args, dir, true);
}

/** Stops the process by its pid: SIGTERM (graceful) or SIGKILL (a crash). */
export async function stop(r: Running, signal: NodeJS.Signals = "SIGTERM") {
  if (r.child.exitCode !== null || r.child.signalCode !== null) return;
  const exited = new Promise((done) => r.child.once("exit", done));
  r.child.kill(signal);
  await exited;
}

export function remove(r: Running) {
  rmSync(r.dir, { recursive: true, force: true });
}

/**
 * A loopback TCP proxy in front of a console, so a test can cut the
 * browser's connections (an SSE stream included) as a network would.
 */
export async function proxy(target: string) {
  const { createServer, connect } = await import("node:net");
  const { hostname, port } = new URL(target);
  const sockets = new Set<import("node:net").Socket>();
  let refusing = false;
  const server = createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = connect(Number(port), hostname);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", end);
      s.on("close", end);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const address = server.address() as import("node:net").AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}`,
    /** Cuts every open connection and refuses new ones for `ms`. */
    async outage(ms: number) {
      refusing = true;
      for (const s of sockets) s.destroy();
      await new Promise((done) => setTimeout(done, ms));
      refusing = false;
    },
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
