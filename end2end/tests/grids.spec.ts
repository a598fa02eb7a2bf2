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
  await expect(east).toContainText("v1");
  await expect(east).toContainText("GiB");

  await east.getByRole("link", { name: "east" }).click();
  await expect(page).toHaveURL(url() + "/grids/east");
  await expect(page.getByRole("heading", { name: "Grid east" })).toBeVisible();
  await expect(page.getByText("Checked at")).toBeVisible();
});
