import { expect, test } from "@playwright/test";

import { password, url, user } from "./helpers";

test("an operator signs in, sees the dashboard and signs out", async ({ page }) => {
  await page.goto(url() + "/");
  await expect(page).toHaveURL(/\/login$/);
  await expect(page.locator("#root")).toHaveAttribute("data-hydrated", "true");

  await page.getByLabel("User name").fill(user());
  await page.getByLabel("Password").fill("wrong password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("login-error")).toHaveText("Wrong user name or password.");

  await page.getByLabel("User name").fill(user());
  await page.getByLabel("Password").fill(password());
  await page.getByRole("button", { name: "Sign in" }).click();

  await expect(page).toHaveURL(url() + "/");
  await expect(page.getByRole("heading", { name: "Dashboard" })).toBeVisible();
  await expect(page.getByTestId("user-name")).toHaveText(user());
  await expect(page.getByTestId("user-role")).toHaveText("admin");
  await expect(page.getByTestId("mode")).toContainText("both");
  await expect(page.locator("#root")).toHaveAttribute("data-hydrated", "true");

  // Client-side navigation after hydration, then back.
  await page.getByRole("link", { name: "Users" }).click();
  await expect(page).toHaveURL(url() + "/users");
  await expect(page.getByTestId("users")).toContainText("admin");
  await page.getByRole("link", { name: "Dashboard" }).click();
  await expect(page.getByRole("heading", { name: "Dashboard" })).toBeVisible();

  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page).toHaveURL(/\/login\?signed_out=1$/);
  await expect(page.getByText("You are signed out.")).toBeVisible();

  // The session is gone: the dashboard asks for a sign-in again.
  await page.goto(url() + "/");
  await expect(page).toHaveURL(/\/login$/);
});
