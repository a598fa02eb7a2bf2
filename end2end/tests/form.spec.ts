import { expect, test } from "@playwright/test";
import { hydrated, screenshot, signIn, url } from "./helpers";

// The shared demo: nothing here starts an operation.

test("an app's row opens the form with it named, and the form shows only what applies", async ({ page }) => {
  await page.setViewportSize({ width: 1280, height: 900 });
  await signIn(page);
  await page.goto(url() + "/grids/east");
  const shop = page.locator('[data-testid="apps"] tr[data-app="shop"]');
  await expect(async () => {
    await page.reload();
    await expect(shop).toHaveCount(1, { timeout: 1000 });
  }).toPass({ timeout: 20_000 });
  await shop.getByRole("link", { name: "Migrate shop" }).click();
  await expect(page).toHaveURL(/\/operations\/new\?source_grid=east&source_app=shop&action=migrate/);
  await hydrated(page);

  // Named from the row: the source, the target after it, the grid's apps offered.
  await expect(page.getByLabel("Source app")).toHaveValue("shop");
  await expect(page.getByLabel("Target app name")).toHaveValue("shop");
  await expect(page.getByTestId("source-apps")).toHaveText("On east: shop (running).");
  await expect(page.locator("#source_app-choices option")).toHaveCount(1);
  await expect(page.locator("#action-migrate")).toBeChecked();

  // The target's name follows the source's until it is typed.
  await page.getByLabel("Source app").fill("shop2");
  await expect(page.getByLabel("Target app name")).toHaveValue("shop2");
  await page.getByLabel("Target app name").fill("store");
  await page.getByLabel("Source app").fill("shop");
  await expect(page.getByLabel("Target app name")).toHaveValue("store");

  // Cold: no cutover choices. Warm: the cutover and what happens at the
  // pass limit; scheduled: its time. A snapshot keeps no source.
  const cutover = page.getByLabel("Cut over", { exact: true });
  const at = page.getByLabel("Scheduled cutover, UTC");
  const keep = page.getByText("After a migrate");
  await expect(cutover).toBeHidden();
  await page.getByTestId("copy-warm").check();
  await expect(cutover).toBeVisible();
  await expect(page.getByTestId("warm-limit")).toBeVisible();
  await expect(at).toBeHidden();
  await cutover.selectOption("scheduled");
  await expect(at).toBeVisible();
  await cutover.selectOption("auto");
  await expect(at).toBeHidden();
  await expect(keep).toBeVisible();
  await page.locator("#action-snapshot").check();
  await expect(keep).toBeHidden();
  await page.locator("#action-migrate").check();
  await screenshot(page, "new-operation-form");

  await page.getByRole("button", { name: "Review the plan" }).click();
  await expect(page.getByTestId("preflight")).toContainText("migrate east/shop → west/store");
  await expect(page.getByTestId("copy-mode")).toContainText("warm");
  await expect(page.getByRole("button", { name: "Start the migration" })).toBeVisible();
});

test("a mistyped address gets a 404 page with the navigation, hydrated under the CSP", async ({ page }) => {
  await signIn(page);
  const r = await page.goto(url() + "/operatoins");
  expect(r!.status()).toBe(404);
  await expect(page.getByTestId("not-found")).toContainText("Page not found");
  await hydrated(page);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Operations" }).click();
  await expect(page).toHaveURL(url() + "/operations");
  const icon = await page.request.get(url() + "/favicon.ico");
  expect(icon.status()).toBe(200);
  expect(icon.headers()["content-type"]).toBe("image/svg+xml");
});

test("on a phone the header takes two short rows and every link of the navigation can be reached", async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await signIn(page);
  await hydrated(page);
  const header = await page.locator("header.topbar").boundingBox();
  expect(header!.height).toBeLessThanOrEqual(844 / 8);
  // Every link of the navigation can be brought into view (the row scrolls sideways).
  for (const name of ["Dashboard", "Grids", "Operations", "Groups", "Lock", "Users", "Audit"]) {
    const link = page.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true });
    await link.scrollIntoViewIfNeeded();
    // Whole but for subpixel rounding of the row's scroll (0.99 seen).
    await expect(link).toBeInViewport({ ratio: 0.98 });
  }
  await screenshot(page, "phone-dashboard");
});

test.describe("in Kolkata", () => {
  test.use({ timezoneId: "Asia/Kolkata" });

  test("times are shown to the second in the reader's zone once the page has loaded", async ({ page }) => {
    await signIn(page);
    await page.goto(url() + "/users");
    await hydrated(page);
    const when = page.locator("td time").first();
    const iso = (await when.getAttribute("datetime"))!;
    const local = new Date(Date.parse(iso) + 330 * 60_000).toISOString();
    await expect(when).toHaveText(`${local.slice(0, 10)} ${local.slice(11, 19)} (UTC+5:30)`);
    // Without the page's scripts, the server's UTC to the second.
    expect(await when.getAttribute("title")).toBe(`${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`);
  });
});
