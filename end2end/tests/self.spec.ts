import { expect, test } from "@playwright/test";
import { remove, Running, startSelfDemo, stop } from "./console";
import { hydrated, logSeqs, signIn } from "./helpers";

// The console lives inside `shop` (MIG's way). Migrating shop takes the
// console along: the page must ride through its absence. The copy is
// slowed so the absence lasts long enough to be seen.
let demo: Running;
test.beforeAll(async () => {
  demo = await startSelfDemo(24);
});
test.afterAll(async () => {
  await stop(demo);
  remove(demo);
});

test("the console inside shop migrates it and the monitor rides through the move to done", async ({ page }) => {
  // The waits below (60 s for the move, then 120 s for the outcome) fit in this.
  test.setTimeout(240_000);
  await signIn(page, demo.url, demo.user, demo.password);
  await expect(page.getByTestId("current-grid")).toContainText("east");
  await page.goto(demo.url + "/operations/new");
  await hydrated(page);
  await page.getByLabel("Source app").fill("shop");
  await page.getByLabel("Target grid").selectOption("west");
  await page.getByLabel("Target app name").fill("shop");
  await page.getByLabel("migrate").check();
  await page.getByRole("button", { name: "Review the plan" }).click();
  await expect(page.getByTestId("preflight")).toContainText("pre-flight passed");
  await page.getByRole("button", { name: "Start the migration" }).click();
  await expect(page).toHaveURL(/\/operations\/op-/);
  await hydrated(page);

  // The console stops with its app: the page says where it comes back.
  await expect(page.getByTestId("link-state")).toContainText("moving with the app to west", { timeout: 60_000 });
  // It answers again from west, on the same page, without signing in again.
  await expect(page.getByTestId("outcome")).toHaveText("done", { timeout: 120_000 });

  // The page's log is the stored one: every event but the state samples.
  const id = page.url().split("/").pop()!;
  const stored = await (await page.request.get(`${demo.url}/api/v1/operations/${id}/events`, {
    headers: { accept: "application/json" },
  })).json();
  const expected = stored.filter((e: { kind: string }) => e.kind !== "state").map((e: { seq: number }) => e.seq);
  expect(await logSeqs(page)).toEqual(expected);
  const console = await (await page.request.get(`${demo.url}/api/v1/console`)).json();
  expect(console.current_grid).toBe("west");
});
