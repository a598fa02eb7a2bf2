import AxeBuilder from "@axe-core/playwright";
import { expect, Page, test } from "@playwright/test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { remove, Running, startDemo, stop } from "./console";
import { copiedAtLeast, hydrated, screenshot, signIn } from "./helpers";

// Its own demo, where warm cannot keep its promise: shop rewrites its data
// volume at random in 64 KiB writes as fast as the grid lets it (asked for
// 24 MiB/s; a debug build's disk path gives about 10) against a copy
// limited to 24 MiB/s, so passes stop halving; the console cuts over after
// 5 passes whatever they found (warm_at_pass_limit's default).
let demo: Running;
test.beforeAll(async () => {
  // The demo keeps a migctl.toml it finds: the demo's own, with a pass limit of 5.
  const dir = mkdtempSync(join(tmpdir(), "migctl-e2e-outcome-"));
  writeFileSync(
    join(dir, "migctl.toml"),
    [
      'current_grid = "east"',
      'mode = "both"',
      'grids_file = "gridsim/console/grids.toml"',
      'private_key_file = "gridsim/console/id_ed25519"',
      'known_hosts_file = "gridsim/console/known_hosts"',
      "warm_pass_limit = 5",
      "",
    ].join("\n"),
  );
  demo = await startDemo(24, dir, ["--shop-write-kib", String(24 * 1024)]);
});
test.afterAll(async () => {
  await stop(demo);
  remove(demo);
});

async function begin(page: Page, source: string, target: string, warm: boolean) {
  await page.goto(demo.url + "/operations/new");
  await hydrated(page);
  await page.getByLabel("Source grid").selectOption(source);
  await page.getByLabel("Source app").fill("shop");
  await page.getByLabel("Target grid").selectOption(target);
  await page.getByLabel("Target app name").fill("shop");
  await page.getByLabel("migrate").check();
  await page.getByTestId(warm ? "copy-warm" : "copy-cold").check();
  await page.getByRole("button", { name: "Review the plan" }).click();
  await page.getByRole("button", { name: "Start the migration" }).click();
  await expect(page).toHaveURL(/\/operations\/op-/);
  await hydrated(page);
}

test("warm that cannot converge says so while it runs, and its summary flags the broken promise", async ({ page }) => {
  test.setTimeout(240_000);
  await page.setViewportSize({ width: 1280, height: 900 });
  await signIn(page, demo.url, demo.user, demo.password);

  // The form says what warm does at its pass limit, in this console's terms.
  await page.goto(demo.url + "/operations/new");
  await expect(page.getByTestId("warm-limit")).toContainText("if the app still changes more after 5 passes");
  await expect(page.getByTestId("warm-limit")).toContainText("it cuts over anyway");

  await begin(page, "east", "west", true);
  // After two passes: what a cutover now would cost, and the warning.
  await expect(page.getByTestId("not-converging")).toContainText("The passes are not converging: the app writes", { timeout: 90_000 });
  await expect(page.getByTestId("cutover-outlook")).toContainText("Cutting over now would copy about");
  await expect(page.getByTestId("progress")).not.toContainText("left");
  // Cutting over is the decision left: the primary action, above the progress.
  await expect(page.getByRole("button", { name: "Cut over now" })).toHaveClass(/primary/);
  await screenshot(page, "monitor-warm-not-converging");
  const axe = await new AxeBuilder({ page }).analyze();
  expect(axe.violations, JSON.stringify(axe.violations, null, 2)).toEqual([]);

  // It cuts over at the pass limit by itself; the summary says what that cost.
  await expect(page.getByTestId("summary")).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId("summary")).toHaveAttribute("data-outcome", "done");
  await expect(page.getByTestId("summary-broken-promise")).toContainText("Warm promised a short stop, but its passes did not converge: the pass limit is reached");
  await expect(page.getByTestId("summary-downtime")).toContainText("it cut over after pass 5 (the pass limit)");
  await expect(page.getByTestId("summary-runs-on").getByRole("link", { name: "west/shop" })).toHaveAttribute("href", "/grids/west");
  await expect(page.getByTestId("summary-settled")).toContainText("The source east/shop was destroyed, after the target was verified.");
  await expect(page.getByTestId("pane-source")).toContainText("destroyed");
  await expect(page.getByTestId("pane-helper")).toContainText("removed");
  // Every log line has its time of day.
  await expect(page.getByTestId("log").locator("li time").first()).toHaveText(/^\d\d:\d\d:\d\d$/);
  await screenshot(page, "monitor-summary-broken-promise");

  // The same page loaded afresh (no live stream) says the same.
  await page.reload();
  await expect(page.getByTestId("summary-broken-promise")).toBeVisible();
  const again = await new AxeBuilder({ page }).analyze();
  expect(again.violations, JSON.stringify(again.violations, null, 2)).toEqual([]);
});

test("a cancelled migrate's summary says what was cleaned up, and its cards agree", async ({ page }) => {
  test.setTimeout(180_000);
  await signIn(page, demo.url, demo.user, demo.password);
  // shop runs on west now (the test above moved it).
  await begin(page, "west", "east", false);
  await copiedAtLeast(page, 24 << 20);
  await page.getByTestId("cancel").locator("summary").click();
  await page.getByRole("button", { name: "Yes, cancel and clean up" }).click();

  await expect(page.getByTestId("summary")).toHaveAttribute("data-outcome", "cancelled", { timeout: 60_000 });
  await expect(page.getByTestId("summary-result")).toContainText("The migrate was cancelled: cancelled by");
  await expect(page.getByTestId("summary-runs-on")).toContainText("west/shop");
  const settled = page.getByTestId("summary-settled");
  await expect(settled).toContainText("The helper east/MigHelper_shop was removed.");
  await expect(settled).toContainText("The source west/shop was started again.");
  await expect(settled).toContainText("The partial target east/shop was removed.");
  await expect(page.getByTestId("pane-source")).toContainText("running (started again)");
  await expect(page.getByTestId("pane-target")).toContainText("removed");
  // The pipeline keeps its ticks up to where it stopped.
  await expect(page.getByTestId("pipeline").locator("li.done").first()).toBeVisible();
  await expect(page.getByTestId("pipeline").locator("li.failed")).toHaveCount(1);
  await screenshot(page, "monitor-summary-cancelled");
});
