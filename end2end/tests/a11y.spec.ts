import { expect, test } from "@playwright/test";
import { remove, Running, startDemo, stop } from "./console";
import { hydrated, signIn, violations } from "./helpers";

// Its own demo: a snapshot gives the monitor and the history something to show.
let demo: Running;
test.beforeAll(async () => {
  demo = await startDemo();
});
test.afterAll(async () => {
  await stop(demo);
  remove(demo);
});

test("every page has no serious or critical accessibility violations", async ({ page }) => {
  test.setTimeout(120_000);
  await page.goto(demo.url + "/login");
  await hydrated(page);
  expect(await violations(page), "/login").toEqual([]);

  await signIn(page, demo.url, demo.user, demo.password);
  const op = await page.evaluate(async () => {
    const r = await fetch("/api/v1/operations", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ source_grid: "east", source_app: "shop", target_grid: "west", target_app: "snap", action: "snapshot", warm: true }),
    });
    return (await r.json()).id as string;
  });
  const pages = [
    "/",
    "/operations",
    "/operations/new",
    "/operations/new?review=1&source_grid=east&source_app=shop&target_grid=west&target_app=other&action=migrate",
    "/grids/east",
    "/lock",
    "/users",
    "/audit",
    `/operations/${op}`,
  ];
  for (const path of pages) {
    await page.goto(demo.url + path);
    await hydrated(page);
    expect(await violations(page), path).toEqual([]);
  }
  await expect(page.getByTestId("outcome")).toHaveText("done", { timeout: 60_000 });
  expect(await violations(page), "the monitor of a finished operation").toEqual([]);

  // The audit trail, filtered: the snapshot started above, and who did it.
  await page.goto(demo.url + "/audit?action=operation");
  await expect(page.getByTestId("audit").locator('tr[data-action="operation.start"]')).toContainText(`${op}: snapshot east/shop to west/snap (warm)`);
  await expect(page.getByTestId("audit").locator('tr[data-action^="login"]')).toHaveCount(0);

  // The check sees what it should: an image without a text alternative.
  await page.evaluate(() => document.querySelector("main")!.insertAdjacentHTML("beforeend", '<img src="/favicon.ico">'));
  expect((await violations(page)).join("\n")).toContain("image-alt (critical)");
});
