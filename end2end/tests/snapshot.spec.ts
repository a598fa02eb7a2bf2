import { expect, test } from "@playwright/test";
import { proxy, remove, Running, startDemo, stop } from "./console";
import { copiedAtLeast, hydrated, logSeqs, signIn } from "./helpers";

// Its own demo, copying at 16 MiB/s so there is time to look mid-copy.
let demo: Running;
test.beforeAll(async () => {
  demo = await startDemo(16);
});
test.afterAll(async () => {
  await stop(demo);
  remove(demo);
});

test("a snapshot watched from two browsers, one reloading mid-copy, shows one log and ends with the source running", async ({ browser }) => {
  // The waits below (90 s for each outcome) fit in this.
  test.setTimeout(180_000);
  const first = await browser.newContext();
  const second = await browser.newContext();
  const a = await first.newPage();
  const b = await second.newPage();
  // Browser A reaches the console through a proxy the test can cut.
  const net = await proxy(demo.url);
  await signIn(a, net.url, demo.user, demo.password);
  await signIn(b, demo.url, demo.user, demo.password);

  await a.goto(net.url + "/operations/new?review=1&source_grid=east&source_app=shop&target_grid=north&target_app=shopcopy&action=snapshot");
  await expect(a.getByTestId("preflight")).toContainText("snapshot east/shop → north/shopcopy");
  await expect(a.getByTestId("plan-steps").locator("li").filter({ hasText: "app start shop" })).toHaveCount(1);
  await a.getByRole("button", { name: "Start the snapshot" }).click();
  await expect(a).toHaveURL(/\/operations\/op-/);
  const monitor = a.url().replace(net.url, demo.url);

  await b.goto(monitor);
  await hydrated(a);
  await hydrated(b);
  await copiedAtLeast(b, 32 << 20);

  // A dropped connection (cut for 2 s while lines keep coming): the browser
  // says so, reconnects with Last-Event-ID and loses no line (checked below).
  await expect(a.getByTestId("link-state")).toHaveAttribute("data-state", "live");
  const outage = net.outage(2000);
  await expect(a.getByTestId("link-state")).toHaveAttribute("data-state", "reconnecting");
  await outage;
  await expect(a.getByTestId("link-state")).toHaveAttribute("data-state", "live", { timeout: 20_000 });

  // Reloading mid-copy shows the whole log so far, then continues live.
  const before = await logSeqs(b);
  await b.reload();
  await hydrated(b);
  const after = await logSeqs(b);
  expect(after.slice(0, before.length)).toEqual(before);
  expect(after[0]).toBe(1);
  const doneAtReload = Number(await b.getByTestId("progress").getAttribute("data-done"));
  await expect(b.getByTestId("link-state")).toHaveAttribute("data-state", "live");
  await copiedAtLeast(b, doneAtReload + 1);

  // Both end with the outcome and the very same log, no line lost or doubled.
  await expect(a.getByTestId("outcome")).toHaveText("done", { timeout: 90_000 });
  await expect(b.getByTestId("outcome")).toHaveText("done", { timeout: 90_000 });
  const seqsA = await logSeqs(a);
  const seqsB = await logSeqs(b);
  expect(seqsA).toEqual(seqsB);
  expect(seqsA).toEqual([...seqsA].sort((x, y) => x - y));
  expect(new Set(seqsA).size).toBe(seqsA.length);
  const textA = await a.getByTestId("log").innerText();
  const textB = await b.getByTestId("log").innerText();
  expect(textA).toEqual(textB);
  await expect(a.getByTestId("log")).toContainText("snapshot complete");
  // What the live pages showed is exactly what was stored: nothing came after the end.
  await a.reload();
  expect(await logSeqs(a)).toEqual(seqsA);

  net.close();

  // The source runs again; the copy waits, stopped, on north.
  await expect(async () => {
    await a.goto(demo.url + "/grids/east");
    await expect(a.locator('tr[data-app="shop"]')).toContainText("running", { timeout: 1000 });
    await a.goto(demo.url + "/grids/north");
    await expect(a.locator('tr[data-app="shopcopy"]')).toContainText("stopped", { timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  await first.close();
  await second.close();
});
