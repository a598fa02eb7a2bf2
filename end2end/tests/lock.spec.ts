import { expect, test } from "@playwright/test";
import { remove, run, Running, startDemo, stop } from "./console";
import { copiedAtLeast, hydrated, screenshot, signIn } from "./helpers";

// A console killed mid-copy, restarted while the grids are down: its lock
// cannot be settled, is shown stale with the reason, and an admin overrides it.
let demo: Running;
let restarted: Running | undefined;
test.beforeAll(async () => {
  demo = await startDemo(8);
});
test.afterAll(async () => {
  if (restarted) await stop(restarted);
  await stop(demo);
  remove(demo);
});

test("a lock left by a killed console is shown stale and an admin overrides it", async ({ page }) => {
  await page.setViewportSize({ width: 1280, height: 900 });
  await signIn(page, demo.url, demo.user, demo.password);
  await page.goto(demo.url + "/operations/new?review=1&source_grid=east&source_app=shop&target_grid=west&target_app=shop&action=migrate");
  await page.getByRole("button", { name: "Start the migration" }).click();
  await expect(page).toHaveURL(/\/operations\/op-/);
  const opId = page.url().split("/operations/")[1];
  await hydrated(page);
  await copiedAtLeast(page, 8 << 20);

  // SIGKILL: the console (and the simulated grids it runs) die mid-copy.
  await stop(demo, "SIGKILL");
  // The console alone comes back; the grids stay down.
  restarted = await run(["serve", "--config-dir", demo.dir, "--listen", "127.0.0.1:0"], demo.dir, false);
  // Sessions live in the console's database: still signed in after the restart.
  await page.goto(restarted.url + "/");
  await expect(page.getByRole("heading", { name: "Dashboard" })).toBeVisible();

  const banner = page.getByTestId("lock-banner");
  await expect(banner).toContainText(opId);
  // Start-up reconciliation cannot ask the grids: it keeps the lock, says
  // why, and asks again.
  await expect(async () => {
    await page.reload();
    await expect(page.getByTestId("lock-stale")).toContainText("asks the grids again", { timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  await expect(page.getByTestId("lock-stale")).toContainText("cannot decide");
  await banner.getByRole("link", { name: "Override the lock…" }).click();

  await expect(page.getByTestId("lock-stale")).toHaveText("stale");
  await expect(page.getByTestId("stale-reason")).toContainText("cannot be asked");
  await expect(page.getByTestId("lock-fields")).toContainText(opId);
  await expect(page.getByTestId("lock-age")).toContainText("ago");
  await expect(page.getByTestId("ev-source")).toContainText("unknown");
  // Its last progress in the monitor's words, with when it came.
  await expect(page.getByTestId("lock-progress")).toHaveText(/^\d+% — [\d.]+ \w+ of 576 MiB at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d/);
  await screenshot(page, "lock");

  // The op id must be typed; a wrong one is refused next to the field.
  const form = page.getByTestId("override-form");
  await form.getByLabel(`Type ${opId} to confirm`).fill("op-wrong");
  await form.getByLabel("Reason").fill("console died while the grids were down");
  await form.getByRole("button", { name: "Override the lock" }).click();
  await expect(page.getByTestId("error-op_id")).toContainText(`the lock belongs to ${opId}`);

  await form.getByLabel(`Type ${opId} to confirm`).fill(opId);
  await form.getByLabel("Reason").fill("console died while the grids were down");
  await form.getByRole("button", { name: "Override the lock" }).click();
  await expect(page.getByTestId("lock-ok")).toContainText(`the lock of ${opId} is overridden`);
  await expect(page.getByTestId("no-lock")).toBeVisible();

  // The operation records it; the dashboard is free again.
  await page.goto(`${restarted.url}/operations/${opId}`);
  await expect(page.getByTestId("outcome")).toHaveText("failed");
  await expect(page.getByTestId("reason")).toContainText("lock overridden by admin: console died while the grids were down");
  await page.goto(restarted.url + "/");
  await expect(page.getByTestId("lock-banner")).toHaveCount(0);
});
