import { expect, test } from "@playwright/test";

import { hydrated, password, signIn, url, user } from "./helpers";

test("pages hydrate under the Content-Security-Policy and nothing is blocked", async ({ page }) => {
  const violations: string[] = [];
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) violations.push(m.text());
  });
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) =>
      console.error(`Refused to load: ${e.violatedDirective} ${e.blockedURI}`),
    );
  });
  const response = await page.goto(url() + "/login");
  const csp = response!.headers()["content-security-policy"];
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).toMatch(/'nonce-[A-Za-z0-9_-]+'/);
  await hydrated(page);
  await signIn(page);
  for (const path of ["/", "/operations", "/operations/new", "/lock", "/users"]) {
    await page.goto(url() + path);
    await hydrated(page);
  }
  expect(violations).toEqual([]);
});

test("signing in never lands off the console, whatever `next` says", async ({ page }) => {
  await page.goto(url() + "/login?next=%2F%09%2Fevil.example%2Fphish");
  await hydrated(page);
  await page.getByLabel("User name").fill(user());
  await page.getByLabel("Password").fill(password());
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(url() + "/");
  await expect(page.getByRole("heading", { name: "Dashboard" })).toBeVisible();
});
