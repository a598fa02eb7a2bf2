import { expect, test } from "@playwright/test";
import { signIn, url } from "./helpers";

test("an operator migrates shop from east to west and watches it to done", async ({ page }) => {
  await signIn(page);
  await page.getByRole("link", { name: "Operations" }).click();
  await page.getByRole("link", { name: "New operation" }).click();
  await expect(page).toHaveURL(url() + "/operations/new");

  // A taken target name is refused next to the field.
  await page.getByLabel("Source grid").selectOption("east");
  await page.getByLabel("Source app").fill("shop");
  await page.getByLabel("Target grid").selectOption("east");
  await page.getByLabel("Target app name").fill("shop");
  await page.getByRole("button", { name: "Start" }).click();
  await expect(page.getByTestId("form-error")).toContainText("the target is the source");

  await page.getByLabel("Target grid").selectOption("west");
  await page.getByLabel("Target app name").fill("shop");
  await page.getByLabel("Migrate").check();
  await page.getByRole("button", { name: "Start" }).click();
  await expect(page).toHaveURL(/\/operations\/op-/);
  await expect(page.getByRole("heading", { name: "migrate east/shop → west/shop" })).toBeVisible();

  // The monitor refreshes itself until the outcome.
  await expect(page.getByTestId("outcome")).toHaveText("done", { timeout: 60_000 });
  await expect(page.getByTestId("progress")).toContainText("100%");
  await expect(page.getByTestId("log")).toContainText("verified volume boot");

  // The grid pages show the app on the target and gone from the source.
  await expect(async () => {
    await page.goto(url() + "/grids/west");
    await expect(page.locator('tr[data-app="shop"]')).toContainText("running", { timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  await page.goto(url() + "/grids/east");
  await expect(page.locator('tr[data-app="shop"]')).toHaveCount(0);
});
