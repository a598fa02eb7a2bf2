import { expect, test } from "@playwright/test";
import { remove, Running, startDemo, stop } from "./console";
import { copiedAtLeast, hydrated, screenshot, signIn } from "./helpers";

// Its own demo: this test moves the app. The copy is slowed to 12 MiB/s
// (about 20 s for the 232 MiB that move) so the monitor can be seen mid-copy
// and lines keep coming while the log's auto-scroll is checked.
let demo: Running;
test.beforeAll(async () => {
  demo = await startDemo(12);
});
test.afterAll(async () => {
  await stop(demo);
  remove(demo);
});

test("an operator reviews the pre-flight, migrates shop from east to west and watches it to done", async ({ page, browser }) => {
  // The copy is slowed on purpose: the waits below (90 s for the outcome) fit in this.
  test.setTimeout(180_000);
  await page.setViewportSize({ width: 1280, height: 900 });
  await signIn(page, demo.url, demo.user, demo.password);
  await screenshot(page, "dashboard");
  await page.getByRole("link", { name: "Operations" }).first().click();
  await page.getByRole("link", { name: "New operation" }).click();
  await expect(page).toHaveURL(demo.url + "/operations/new");
  await hydrated(page);

  // Typing is checked at once: the name rules, then whether the name is taken.
  await page.getByLabel("Target grid").selectOption("east");
  await page.getByLabel("Target app name").fill("2shop");
  await expect(page.getByTestId("error-target_app")).toContainText("\"2shop\" must start with a letter");
  await page.getByLabel("Target app name").fill("shop");
  await expect(page.getByTestId("error-target_app")).toHaveText("shop already exists on grid east; pick another name, or update it");
  await page.getByLabel("Target grid").selectOption("west");
  await expect(page.getByTestId("error-target_app")).toBeHidden();

  // The pre-flight shows what will happen before anything does.
  await page.getByLabel("Source app").fill("shop");
  await page.getByLabel("migrate").check();
  await page.getByRole("button", { name: "Review the plan" }).click();
  const plan = page.getByTestId("preflight");
  await expect(plan).toContainText("pre-flight passed");
  await expect(plan).toContainText("migrate east/shop → west/shop");
  const steps = page.getByTestId("plan-steps").locator("li");
  await expect(steps.first()).toContainText("app provision MigHelper MigHelper_shop");
  await expect(steps.nth(1)).toContainText("app stop shop --timeout 120");
  await expect(steps.last()).toContainText("app destroy shop");
  await expect(page.getByTestId("estimate")).toContainText("the configured limit copy_rate_limit_mib = 12");
  await expect(page.getByTestId("bytes")).toContainText("576 MiB");
  await screenshot(page, "new-operation-preflight");
  await page.getByRole("button", { name: "Start the migration" }).click();

  await expect(page).toHaveURL(/\/operations\/op-/);
  await expect(page.getByRole("heading", { name: "migrate east/shop → west/shop" })).toBeVisible();
  await hydrated(page);
  await expect(page.getByTestId("link-state")).toHaveAttribute("data-state", "live");

  // Mid-copy: rate and ETA, the helper working, the source stopped.
  await copiedAtLeast(page, 40 << 20);
  await expect(page.getByTestId("progress")).toContainText("/s");
  await expect(page.getByTestId("progress")).toContainText("left");
  await expect(page.getByTestId("pane-helper")).toContainText("running");
  await expect(page.getByTestId("pane-source")).toContainText("stopped");
  await expect(page.getByTestId("cancel")).toContainText("Cancel this operation");
  await screenshot(page, "monitor-mid-copy");

  // Progress never goes backwards while it runs: every value it shows
  // until it has moved three times.
  const seen: number[] = [];
  await expect
    .poll(async () => {
      const done = Number(await page.getByTestId("progress").getAttribute("data-done"));
      if (seen.length === 0 || done !== seen[seen.length - 1]) seen.push(done);
      return seen.length;
    }, { timeout: 60_000 })
    .toBeGreaterThanOrEqual(4);
  expect(seen, `progress went ${seen.join(" → ")}`).toEqual([...seen].sort((a, b) => a - b));

  // The log filter shows one source at a time, without a reload.
  await page.locator('[data-log-filter="helper"]').click();
  await expect(page).toHaveURL(/\?log=helper$/);
  await expect(page.getByTestId("log").locator('li:not([data-source="helper"])')).toHaveCount(0);
  await expect(page.getByTestId("log").locator('li[data-source="helper"]').first()).toBeVisible();
  await page.locator('[data-log-filter="all"]').click();

  // Scrolling up pauses auto-scroll while lines keep coming; the button resumes it.
  const box = page.locator(".log-box");
  const atBottom = () => box.evaluate((el) => el.scrollTop + el.clientHeight >= el.scrollHeight - 8);
  await expect.poll(atBottom).toBe(true);
  // A jump to the newest line whose scroll event comes after more lines
  // did is not the operator scrolling up: the log keeps following.
  const paused = await box.evaluate(async (el) => {
    // Away and back within one task: one scroll event, a frame later.
    el.scrollTop = 0;
    el.scrollTop = el.scrollHeight;
    const lines = el.querySelector("ol") as HTMLElement;
    lines.style.paddingBottom = "300px";
    const frame = () => new Promise((done) => requestAnimationFrame(done));
    await frame();
    await frame();
    const shown = document.querySelector('[data-testid="follow-log"]') !== null;
    lines.style.paddingBottom = "";
    return shown;
  });
  expect(paused, "auto-scroll paused by its own jump to the newest line").toBe(false);
  await box.evaluate((el) => (el.scrollTop = 0));
  await expect(page.getByTestId("follow-log")).toBeVisible();
  const shown = await page.getByTestId("log").locator("li").count();
  await expect.poll(() => page.getByTestId("log").locator("li").count()).toBeGreaterThan(shown);
  expect(await box.evaluate((el) => el.scrollTop)).toBe(0);
  await page.getByTestId("follow-log").click();
  await expect(page.getByTestId("follow-log")).toBeHidden();
  await expect.poll(atBottom).toBe(true);

  // Live to the outcome, without reloading.
  await expect(page.getByTestId("outcome")).toHaveText("done", { timeout: 90_000 });
  await expect(page.getByTestId("link-state")).toHaveAttribute("data-state", "ended");
  await expect(page.getByTestId("progress")).toContainText("100%");
  await expect(page.getByTestId("log")).toContainText("verified volume boot");
  await expect(page.getByTestId("log").locator('li[data-source="target"]').first()).toBeVisible();
  await expect(page.getByTestId("pane-target")).toContainText("running");

  // The grid pages show the app on the target and gone from the source.
  await expect(async () => {
    await page.goto(demo.url + "/grids/west");
    await expect(page.locator('tr[data-app="shop"]')).toContainText("running", { timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  await expect(async () => {
    await page.goto(demo.url + "/grids/east");
    await expect(page.locator('tr[data-app="shop"]')).toHaveCount(0, { timeout: 1000 });
  }).toPass({ timeout: 30_000 });

  // The history links to the monitor with the whole stored log.
  await page.goto(demo.url + "/operations?state=done");
  await page.locator("tr[data-op] a").first().click();
  await expect(page.getByTestId("outcome")).toHaveText("done");
  await expect(page.getByTestId("log")).toContainText("verified volume data");

  // Without JavaScript the log opens at its newest line.
  const plain = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1280, height: 900 } });
  await plain.addCookies(await page.context().cookies());
  const noJs = await plain.newPage();
  await noJs.goto(page.url());
  const noJsBox = (await noJs.locator(".log-box").boundingBox())!;
  const lines = noJs.getByTestId("log").locator("li");
  const last = (await lines.last().boundingBox())!;
  const first = (await lines.first().boundingBox())!;
  // The newest line shows at the box's foot; the oldest is scrolled out of it.
  expect(last.y + last.height).toBeLessThanOrEqual(noJsBox.y + noJsBox.height + 1);
  expect(last.y).toBeGreaterThanOrEqual(noJsBox.y);
  expect(first.y).toBeLessThan(noJsBox.y);
  await plain.close();
});
