// Starts the shared `migctl demo` (read-only tests use it) and hands the
// tests its URL and admin password through environment variables. Tests
// that change grids start their own demo (see console.ts).
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDemo } from "./console";

export const STATE_FILE = join(tmpdir(), "migctl-e2e-state.json");

export default async function globalSetup() {
  const demo = await startDemo();
  process.env.MIGCTL_URL = demo.url;
  process.env.MIGCTL_USER = demo.user;
  process.env.MIGCTL_PASSWORD = demo.password;
  writeFileSync(STATE_FILE, JSON.stringify({ pid: demo.child.pid, dir: demo.dir }));
}
