import { expect, test } from "@playwright/test";
import { signIn, url } from "./helpers";

test("the dashboard shows the demo grids as reachable and a grid page lists its apps", async ({ page }) => {
  await signIn(page);
  const east = page.locator('tr[data-grid="east"]');
  // The grids are checked in the background; the page shows what is known.
  await expect(async () => {
    await page.reload();
    await expect(east.locator(".status")).toHaveText("reachable", { timeout: 1000 });
  }).toPass({ timeout: 20_000 });
  for (const name of ["west", "north"]) {
    await expect(page.locator(`tr[data-grid="${name}"] .status`)).toHaveText("reachable");
  }
  await expect(east).toContainText("v4");
  await expect(east).toContainText("GiB");

  await east.getByRole("link", { name: "east" }).click();
  await expect(page).toHaveURL(url() + "/grids/east");
  await expect(page.getByRole("heading", { name: "Grid east" })).toBeVisible();
  await expect(page.getByText("Checked at")).toBeVisible();
  // The demo's shop runs on east with its three volumes.
  const shop = page.locator('[data-testid="apps"] tr[data-app="shop"]');
  await expect(shop).toHaveCount(1);
  await expect(shop.locator(".status")).toHaveText("running");
  await expect(shop).toContainText("boot (128 MiB), data (384 MiB), logs (64 MiB)");
});

test("every page fits a phone's width and the controls are reachable by keyboard", async ({ page }) => {
  await signIn(page);
  await page.setViewportSize({ width: 390, height: 844 });
  for (const path of ["/", "/grids", "/operations", "/operations/new", "/groups", "/lock", "/users", "/audit", "/grids/east"]) {
    await page.goto(url() + path);
    await expect(page.locator("main h1")).toBeVisible();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow, `${path} scrolls sideways by ${overflow}px`).toBeLessThanOrEqual(0);
  }
  // From the top of the page, Tab reaches the navigation in order.
  await page.goto(url() + "/");
  const reached: string[] = [];
  for (let i = 0; i < 9; i++) {
    await page.keyboard.press("Tab");
    reached.push(await page.evaluate(() => document.activeElement?.textContent?.trim() ?? ""));
  }
  const nav = ["Dashboard", "Grids", "Operations", "Groups", "Lock", "Users", "Audit", "Sign out"];
  expect(reached.filter((text) => nav.includes(text)), `Tab reached: ${reached.join(" | ")}`).toEqual(nav);
});
