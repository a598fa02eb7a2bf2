import { readFileSync, rmSync } from "node:fs";
import { STATE_FILE } from "./global-setup";

// Stops the console this run started, by its pid, and removes its directory.
export default async function globalTeardown() {
  const { pid, dir } = JSON.parse(readFileSync(STATE_FILE, "utf8"));
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    // already gone
  }
  rmSync(dir, { recursive: true, force: true });
  rmSync(STATE_FILE, { force: true });
}
