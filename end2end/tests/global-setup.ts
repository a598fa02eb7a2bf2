// Starts `migctl demo` on a free loopback port in a fresh directory and hands
// the tests its URL and admin password through environment variables.
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

export const STATE_FILE = join(tmpdir(), "migctl-e2e-state.json");

export default async function globalSetup() {
  const bin = process.env.MIGCTL_BIN ?? resolve(__dirname, "../../target/release/migctl");
  const dir = mkdtempSync(join(tmpdir(), "migctl-e2e-"));
  const child = spawn(bin, ["demo", "--dir", dir, "--listen", "127.0.0.1:0"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const found: Record<string, string> = {};
  await new Promise<void>((done, fail) => {
    const timer = setTimeout(() => fail(new Error("migctl demo printed no url within 30 s")), 30_000);
    child.on("exit", (code) => fail(new Error(`migctl demo exited early with ${code}`)));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const m = /^(url|user|password): (.*)$/.exec(line);
      if (m) found[m[1]] = m[2];
      if (found.url && found.user && found.password) {
        clearTimeout(timer);
        done();
      }
    });
  });
  process.env.MIGCTL_URL = found.url.replace(/\/$/, "");
  process.env.MIGCTL_USER = found.user;
  process.env.MIGCTL_PASSWORD = found.password;
  writeFileSync(STATE_FILE, JSON.stringify({ pid: child.pid, dir }));
}
