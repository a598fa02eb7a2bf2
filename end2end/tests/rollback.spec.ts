import { expect, test } from "@playwright/test";
import { remove, Running, startDemo, stop } from "./console";
import { hydrated, signIn } from "./helpers";

// Its own demo: the migrate and its rollback change what the grids hold.
let demo: Running;
test.beforeAll(async () => {
  demo = await startDemo();
});
test.afterAll(async () => {
  await stop(demo);
  remove(demo);
});

test("a migrate that keeps its source shows it kept on the dashboard and rolls back from its page with the preview's numbers", async ({ page }) => {
  test.setTimeout(180_000);
  await signIn(page, demo.url, demo.user, demo.password);

  // The form's choice "keep the source" reaches the preview and the start.
  await page.goto(demo.url + "/operations/new?source_grid=east&source_app=shop&target_grid=west&target_app=shop&action=migrate");
  await hydrated(page);
  await page.getByTestId("keep-source-yes").check();
  await page.getByRole("button", { name: "Review the plan" }).click();
  await expect(page.getByTestId("plan-steps")).toContainText("keep the source, stopped");
  await page.getByRole("button", { name: "Start the migration" }).click();
  await expect(page).toHaveURL(/\/operations\/op-/);
  const migrate = page.url();
  await expect(page.getByTestId("outcome")).toHaveText("done", { timeout: 90_000 });
  await page.reload();
  await expect(page.getByTestId("kept-text")).toContainText("The source east/shop is kept on its grid, stopped, until");
  // Shown in the reader's local time, the same instant everywhere.
  const until = await page.getByTestId("kept-text").locator("time").getAttribute("datetime");
  expect(until).toMatch(/^\d{4}-\d\d-\d\dT/);

  // The dashboard lists it with its deadline; east's page marks it.
  await page.goto(demo.url + "/");
  await expect(page.locator('tr[data-kept="east/shop"] time')).toHaveAttribute("datetime", until!);
  await page.goto(demo.url + "/grids/east");
  await expect(page.locator('tr[data-app="shop"]').getByTestId("kept-by")).toContainText("kept by");

  // Rolled back from the migrate's page: the preview says how much west changed.
  await page.goto(migrate);
  await page.getByTestId("rollback").click();
  await expect(page.getByTestId("rollback-changed")).toContainText(/^west\/shop changed .+ \(\d+\.\d % of its .+\) since /);
  await page.getByRole("button", { name: "Start the rollback" }).click();
  await expect(page).toHaveURL(/\/operations\/op-/);
  expect(page.url()).not.toBe(migrate);
  await expect(page.getByTestId("outcome")).toHaveText("done", { timeout: 90_000 });
  await page.reload();
  await expect(page.getByTestId("rollback-of")).toContainText(migrate.split("/").pop()!);

  // The migrate now says it was rolled back; shop runs on east again.
  await page.goto(migrate);
  await expect(page.getByTestId("rolled-back-by")).toBeVisible();
  await expect(page.getByTestId("kept-text")).toContainText("was rolled back to");
  await expect(async () => {
    await page.goto(demo.url + "/grids/east");
    await expect(page.locator('tr[data-app="shop"]')).toContainText("running", { timeout: 1000 });
  }).toPass({ timeout: 30_000 });
});
