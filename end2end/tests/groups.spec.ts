import { expect, test } from "@playwright/test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { remove, Running, startDemo, stop } from "./console";
import { hydrated, screenshot, signIn, violations } from "./helpers";

// `migctl demo --group`: the HA group mq1 (primary), mq2 (backup), mq3
// (monitor) on east, and its shipped definition in the console's directory.
let demo: Running;
test.beforeAll(async () => {
  demo = await startDemo(undefined, undefined, ["--group"]);
});
test.afterAll(async () => {
  await stop(demo);
  remove(demo);
});

test("the demo group's run is started from the page, approved there, watched to done, and rolled back from there", async ({ page }) => {
  test.setTimeout(420_000);
  await signIn(page, demo.url, demo.user, demo.password);
  await page.getByRole("link", { name: "Groups" }).click();
  await expect(page.getByRole("heading", { name: "Group runs" })).toBeVisible();
  await hydrated(page);
  // The kept definition is offered; an operator pastes one asking for an
  // approval before the primary moves, and keeping the sources (so that
  // the run can be rolled back).
  await expect(page.getByLabel("A definition kept in the console's directory")).toHaveValue("group-mq.toml");
  expect(await violations(page), "/groups").toEqual([]);
  const shipped = readFileSync(join(demo.dir, "group-mq.toml"), "utf8");
  const asking = shipped
    .replace('member = "mq1"', 'member = "mq1"\nbefore = [{ approval = { prompt = "move the primary mq1?" } }]')
    .replace(/^target_grid = .*$/m, (line) => `${line}\nkeep_source = true`);
  expect(asking).toContain("keep_source = true");
  expect(asking).not.toEqual(shipped);
  // Both chosen: the console says to pick one, and nothing starts.
  await page.getByLabel("or paste a definition (TOML)").fill(asking);
  await page.getByRole("button", { name: "Start the run" }).click();
  await expect(page.getByTestId("groups-error")).toContainText("not both");
  await page.getByLabel("A definition kept in the console's directory").selectOption("");
  await page.getByLabel("or paste a definition (TOML)").fill(asking);
  await page.getByRole("button", { name: "Start the run" }).click();
  await expect(page).toHaveURL(/\/groups\/runs\/run-/);
  await hydrated(page);

  // The steps advance on the page by themselves (it reads the run again):
  // the monitor and the backup move, then the run waits for an operator.
  const steps = page.getByTestId("group-steps").locator("li.step");
  await expect(steps).toHaveCount(3);
  await expect(page.getByTestId("approval-prompt")).toHaveText("move the primary mq1?", { timeout: 150_000 });
  await expect(steps.nth(0)).toHaveAttribute("data-state", "done");
  await expect(steps.nth(1)).toHaveAttribute("data-state", "done");
  await expect(steps.nth(2)).toHaveAttribute("data-state", "current");
  await expect(page.getByTestId("members").locator('tr[data-member="mq3"]')).toHaveAttribute("data-place", "target");
  await expect(page.getByTestId("members").locator('tr[data-member="mq1"]')).toHaveAttribute("data-place", "source");
  // Every after-check of a finished step passed twice in a row, its attempts kept.
  await expect(steps.nth(0).locator("li.item[data-state=passed]")).toHaveCount(3);
  await screenshot(page, "group-run-approval");
  expect(await violations(page), "a run waiting for an approval").toEqual([]);

  await page.getByLabel("Why (kept with your name)").fill("change 42: primary moves now");
  await page.getByRole("button", { name: "Approve: the run goes on" }).click();
  await expect(page.getByTestId("group-run-ok")).toContainText("approved");
  await expect(page.getByTestId("approvals")).toContainText(`approved by ${demo.user}`);
  await expect(page.getByTestId("approvals")).toContainText("change 42: primary moves now");
  await hydrated(page);

  await expect(page.getByTestId("run-state")).toHaveAttribute("data-state", "done", { timeout: 150_000 });
  for (const m of ["mq1", "mq2", "mq3"]) {
    await expect(page.getByTestId("members").locator(`tr[data-member="${m}"]`)).toHaveAttribute("data-place", "target");
  }
  // Each step's operation links to its monitor.
  const op = steps.nth(2).locator('a[href^="/operations/op-"]');
  await expect(op).toHaveCount(1);
  await expect(page.getByTestId("rollback-run")).toBeVisible();
  await screenshot(page, "group-run-done");
  expect(await violations(page), "a done run").toEqual([]);

  // Rolled back from its page: the members return to their kept sources on
  // east, the last moved (mq1) first, the checks after each applied again.
  await page.getByTestId("rollback-run").locator("summary").click();
  await page.getByLabel("Why (kept with your name)").fill("change 42 backed out");
  await page.getByRole("button", { name: "Roll the run back" }).click();
  await expect(page.getByTestId("group-run-ok")).toContainText("rolling back");
  await hydrated(page);
  await expect(page.getByTestId("run-state")).toHaveAttribute("data-state", "rolled_back", { timeout: 200_000 });
  for (const m of ["mq1", "mq2", "mq3"]) {
    await expect(page.getByTestId("members").locator(`tr[data-member="${m}"]`)).toHaveAttribute("data-place", "source");
  }
  for (const n of [0, 1, 2]) {
    await expect(steps.nth(n)).toHaveAttribute("data-state", "rolled_back");
    await expect(steps.nth(n).locator('a[href^="/operations/op-"]')).toHaveCount(2);
  }
  await expect(page.getByTestId("run-reason")).toContainText(`asked by ${demo.user}: change 42 backed out`);
  await expect(page.getByTestId("run-controls")).toContainText("This run has ended");
  await screenshot(page, "group-run-rolled-back");
  expect(await violations(page), "a rolled back run").toEqual([]);

  // The runs list shows it done.
  await page.goto(demo.url + "/groups");
  await expect(page.getByTestId("group-runs").locator("tr[data-run]").first()).toContainText("rolled_back");
});

test("a run's page works without JavaScript: its state, pipeline and controls are served", async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(demo.url + "/login");
  await page.getByLabel("User name").fill(demo.user!);
  await page.getByLabel("Password").fill(demo.password!);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.goto(demo.url + "/groups");
  const first = page.getByTestId("group-runs").locator("tr[data-run] a").first();
  await first.click();
  await expect(page.getByTestId("group-steps").locator("li.step")).toHaveCount(3);
  await expect(page.getByTestId("run-state")).toHaveAttribute("data-state", "rolled_back");
  await expect(page.getByTestId("members").locator('tr[data-member="mq1"]')).toHaveAttribute("data-place", "source");
  await context.close();
});
