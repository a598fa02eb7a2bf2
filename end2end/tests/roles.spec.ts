import { expect, test } from "@playwright/test";
import { remove, Running, startDemo, stop } from "./console";
import { copiedAtLeast, hydrated, signIn } from "./helpers";

// Its own demo, copying slowly (8 MiB/s) so a cancel lands mid-copy.
let demo: Running;
test.beforeAll(async () => {
  demo = await startDemo(8);
});
test.afterAll(async () => {
  await stop(demo);
  remove(demo);
});

test("an admin adds a viewer who can watch but not start or cancel; the admin cancels mid-copy", async ({ browser }) => {
  // The waits below (60 s for each outcome) fit in this.
  test.setTimeout(180_000);
  const adminCtx = await browser.newContext();
  const admin = await adminCtx.newPage();
  await signIn(admin, demo.url, demo.user, demo.password);

  // Users page: add a viewer; a short password is refused next to its field.
  await admin.getByRole("link", { name: "Users" }).click();
  await admin.getByLabel("Name", { exact: true }).fill("vera");
  await admin.getByLabel("Role", { exact: true }).selectOption("viewer");
  await admin.getByLabel("Password (at least 10 characters)").fill("a viewer's password");
  await admin.getByRole("button", { name: "Add user" }).click();
  await expect(admin.getByTestId("users-ok")).toHaveText("added vera as viewer");
  await expect(admin.locator('tr[data-user="vera"]')).toContainText("viewer");

  const viewerCtx = await browser.newContext();
  const viewer = await viewerCtx.newPage();
  await signIn(viewer, demo.url, "vera", "a viewer's password");
  await expect(viewer.getByTestId("user-role")).toHaveText("viewer");
  await expect(viewer.getByRole("link", { name: "Users" })).toHaveCount(0);
  await viewer.goto(demo.url + "/operations/new");
  await expect(viewer.getByTestId("form-error")).toContainText("viewers watch operations but cannot start them");
  await expect(viewer.getByTestId("op-form")).toHaveCount(0);

  // The admin starts a snapshot; the viewer watches without a cancel button.
  await admin.goto(demo.url + "/operations/new?review=1&source_grid=east&source_app=shop&target_grid=west&target_app=shop2&action=snapshot");
  await admin.getByRole("button", { name: "Start the snapshot" }).click();
  await expect(admin).toHaveURL(/\/operations\/op-/);
  await viewer.goto(admin.url());
  await hydrated(viewer);
  await copiedAtLeast(viewer, 8 << 20);
  await expect(viewer.getByTestId("cancel")).toHaveCount(0);
  // A viewer's cancel sent by hand is refused too.
  const refused = await viewer.request.post(admin.url() + "/cancel", {
    headers: { Origin: demo.url },
    maxRedirects: 0,
  });
  expect(refused.status()).toBe(303);
  // The refusal travels as a notice id, never as a sentence in the address.
  const to = refused.headers()["location"];
  expect(to).toMatch(/\?notice=[0-9a-f]{32}$/);
  await viewer.goto(demo.url + to);
  await expect(viewer.getByTestId("monitor-error")).toContainText("needs the operator role");

  // The cancel says what clean-up it does before it does it.
  await hydrated(admin);
  const cancel = admin.getByTestId("cancel");
  await cancel.getByText("Cancel this operation…").click();
  await expect(cancel).toContainText("the source app east/shop is started again and the partial copy west/shop2 is removed");
  await cancel.getByRole("button", { name: "Yes, cancel and clean up" }).click();
  await expect(admin.getByTestId("outcome")).toHaveText("cancelled", { timeout: 60_000 });
  await expect(viewer.getByTestId("outcome")).toHaveText("cancelled", { timeout: 60_000 });

  await expect(async () => {
    await admin.goto(demo.url + "/grids/east");
    await expect(admin.locator('tr[data-app="shop"]')).toContainText("running", { timeout: 1000 });
    await admin.goto(demo.url + "/grids/west");
    await expect(admin.locator('tr[data-app="shop2"]')).toHaveCount(0, { timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  await adminCtx.close();
  await viewerCtx.close();
});
