import AxeBuilder from "@axe-core/playwright";
import { expect, Page } from "@playwright/test";
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";

export const url = () => process.env.MIGCTL_URL!;
export const user = () => process.env.MIGCTL_USER!;
export const password = () => process.env.MIGCTL_PASSWORD!;

/** Signs in on the console at `base` (the shared demo unless given). */
export async function signIn(page: Page, base = url(), name = user(), secret = password()) {
  await page.goto(base + "/login");
  await expect(page.locator("#root")).toHaveAttribute("data-hydrated", "true");
  await page.getByLabel("User name").fill(name);
  await page.getByLabel("Password").fill(secret);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("heading", { name: "Dashboard" })).toBeVisible();
}

/** Waits until the page has hydrated (its live parts work). */
export async function hydrated(page: Page) {
  await expect(page.locator("#root")).toHaveAttribute("data-hydrated", "true");
}

/** Saves a screenshot for the README under docs/screenshots/. */
export async function screenshot(page: Page, name: string) {
  const dir = resolve(__dirname, "../../docs/screenshots");
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: `${dir}/${name}.png`, fullPage: true });
}

/** The numbers of the log lines the monitor shows, in order. */
export async function logSeqs(page: Page): Promise<number[]> {
  const seqs = await page.getByTestId("log").locator("li").evaluateAll((lis) =>
    lis.map((li) => Number(li.getAttribute("data-seq"))),
  );
  return seqs;
}

/** Waits until the monitor reports at least `bytes` copied. */
export async function copiedAtLeast(page: Page, bytes: number, timeout = 60_000) {
  await expect(async () => {
    const done = Number(await page.getByTestId("progress").getAttribute("data-done"));
    expect(done).toBeGreaterThanOrEqual(bytes);
  }).toPass({ timeout });
}

/** The serious and critical accessibility violations axe finds on the page. */
export async function violations(page: Page) {
  const results = await new AxeBuilder({ page }).analyze();
  return results.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}
