import { expect, Page } from "@playwright/test";

export const url = () => process.env.MIGCTL_URL!;
export const user = () => process.env.MIGCTL_USER!;
export const password = () => process.env.MIGCTL_PASSWORD!;

export async function signIn(page: Page) {
  await page.goto(url() + "/login");
  await expect(page.locator("#root")).toHaveAttribute("data-hydrated", "true");
  await page.getByLabel("User name").fill(user());
  await page.getByLabel("Password").fill(password());
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("heading", { name: "Dashboard" })).toBeVisible();
}
