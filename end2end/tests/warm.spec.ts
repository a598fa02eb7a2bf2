import { expect, test } from "@playwright/test";
import { remove, Running, startDemo, stop } from "./console";
import { hydrated, screenshot, signIn } from "./helpers";

// Its own demo: shop writes 64 KiB/s to its data volume while it runs, and
// the copy is slowed to 24 MiB/s (pass 1 takes about 10 s), so passes can be
// watched before the operator cuts over.
let demo: Running;
test.beforeAll(async () => {
  demo = await startDemo(24, undefined, ["--shop-write-kib", "64"]);
});
test.afterAll(async () => {
  await stop(demo);
  remove(demo);
});

test("an operator starts a warm migrate, watches the passes and cuts over to done", async ({ page }) => {
  test.setTimeout(180_000);
  await page.setViewportSize({ width: 1280, height: 900 });
  await signIn(page, demo.url, demo.user, demo.password);
  await page.goto(demo.url + "/operations/new");
  await hydrated(page);
  await page.getByLabel("Source app").fill("shop");
  await page.getByLabel("Target grid").selectOption("west");
  await page.getByLabel("Target app name").fill("shop");
  await page.getByLabel("migrate").check();
  await page.getByTestId("copy-warm").check();
  await page.getByLabel("Cut over", { exact: true }).selectOption("manual");
  await page.getByRole("button", { name: "Review the plan" }).click();

  // The preview says how it copies and what the downtime is.
  await expect(page.getByTestId("copy-mode")).toContainText("warm: shop keeps running while passes copy what changed");
  await expect(page.getByTestId("preflight")).toContainText("Only the final pass");
  const steps = page.getByTestId("plan-steps").locator("li");
  await expect(steps.nth(1)).toContainText("app create shop");
  await page.getByRole("button", { name: "Start the migration" }).click();

  await expect(page).toHaveURL(/\/operations\/op-/);
  await hydrated(page);
  await expect(page.getByTestId("warm-plan")).toContainText("cuts over when an operator presses");
  await expect(page.getByTestId("pipeline")).toContainText("pre-copying");

  // Passes advance while the source keeps running.
  await expect(page.getByTestId("passes").locator('tr[data-pass="1"]')).toBeVisible({ timeout: 60_000 });
  await expect(page.getByTestId("passes").locator('tr[data-pass="2"]')).toBeVisible({ timeout: 60_000 });
  await expect(page.getByTestId("pane-source")).toContainText("running");
  await expect(page.getByTestId("outcome")).toContainText("running: pre-copying");
  await expect(page.getByTestId("progress")).toContainText("100%");
  await screenshot(page, "monitor-warm-passes");

  // Cut over now: the source stops for the final pass only.
  await page.getByRole("button", { name: "Cut over now" }).click();
  await expect(page).toHaveURL(/\/operations\/op-[^?]*$/);
  await expect(page.getByTestId("log")).toContainText("cut over now requested by admin");
  await expect(page.getByTestId("outcome")).toHaveText("done", { timeout: 90_000 });
  await expect(page.getByTestId("passes").locator('tr[data-final="true"]')).toBeVisible();
  await expect(page.getByTestId("downtime")).toContainText("The app was down for");
  const ms = Number(await page.getByTestId("downtime").getAttribute("data-ms"));
  expect(ms).toBeGreaterThan(0);
  await expect(page.getByTestId("log")).toContainText("admin asked to cut over now");
  await expect(page.getByRole("button", { name: "Cut over now" })).toHaveCount(0);
  await screenshot(page, "monitor-warm-done");
});
