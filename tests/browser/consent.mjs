// The cookie banner in a real browser (Debian's Chromium, driven by
// playwright-core). Started by the Rust end-to-end test
// `browser::the_banner_works_in_chromium` with the address of a running
// server and an admin key; prints one line per check and exits non-zero on
// the first failure.
//
//   node tests/browser/consent.mjs http://127.0.0.1:PORT ADMIN_KEY

import { chromium } from "playwright-core";
import assert from "node:assert/strict";

const [base, adminKey] = process.argv.slice(2);
if (!base || !adminKey) {
  console.error("usage: node consent.mjs BASE_URL ADMIN_KEY");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
  ],
});

async function events(visitor) {
  const r = await fetch(`${base}/v1/visitors/${visitor}/consents`, { headers: { authorization: `Bearer ${adminKey}` } });
  assert.equal(r.status, 200, `visitor ${visitor} has no record`);
  return (await r.json()).events;
}

let failed = false;
async function check(name, body) {
  try {
    await body();
    console.log(`ok - ${name}`);
  } catch (e) {
    failed = true;
    console.log(`not ok - ${name}: ${e.message}`);
  }
}

await check("the banner appears, records a rejection, and stays away", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const external = [];
  page.on("request", (r) => { if (!r.url().startsWith(base)) external.push(r.url()); });
  await page.goto(`${base}/consent/preview`);
  const banner = page.locator("#custodian-banner");
  await banner.waitFor({ state: "visible" });
  assert.match(await banner.innerText(), /Analytics/);
  assert.equal(await page.locator("#custodian-banner input[name=marketing]").count(), 0, "no marketing cookies are declared");
  await page.click("#custodian-reject");
  await banner.waitFor({ state: "detached" });
  const consent = await page.evaluate(() => window.Custodian.consent);
  assert.deepEqual(consent, { analytics: false, functional: false });
  assert.equal(await page.locator("#choice").innerText(), JSON.stringify(consent));
  const visitor = await page.evaluate(() => JSON.parse(localStorage.getItem("cookie_choices")).visitor);
  const recorded = await events(visitor);
  assert.ok(recorded.some((e) => e.purpose === "cookie-analytics" && e.action === "refuse"), JSON.stringify(recorded));
  assert.ok(recorded.every((e) => e.wording_sha256 && e.wording_sha256.length === 64), "the wording's hash is the evidence");
  await page.reload();
  await page.waitForFunction(() => window.Custodian && window.Custodian.consent !== null);
  assert.equal(await banner.count(), 0, "the banner came back after a choice");
  assert.deepEqual(external, [], "the page loaded something from elsewhere");
  await context.close();
});

await check("choosing analytics only is recorded as given for analytics", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/consent/preview`);
  await page.locator("#custodian-banner").waitFor({ state: "visible" });
  await page.check("#custodian-banner input[name=analytics]");
  await page.click("#custodian-save");
  await page.locator("#custodian-banner").waitFor({ state: "detached" });
  assert.deepEqual(await page.evaluate(() => window.Custodian.consent), { analytics: true, functional: false });
  const visitor = await page.evaluate(() => JSON.parse(localStorage.getItem("cookie_choices")).visitor);
  const recorded = await events(visitor);
  assert.ok(recorded.some((e) => e.purpose === "cookie-analytics" && e.action === "grant"));
  // Functional cookies consent to their own purpose only.
  assert.ok(recorded.some((e) => e.purpose === "remember-login" && e.action === "refuse"));
  assert.ok(!recorded.some((e) => e.purpose === "interactive-features"), JSON.stringify(recorded));
  // The settings can be reopened and changed at any time.
  await page.click("#change");
  await page.locator("#custodian-banner").waitFor({ state: "visible" });
  assert.ok(await page.isChecked("#custodian-banner input[name=analytics]"), "the banner shows the current choice");
  await page.click("#custodian-reject");
  await page.locator("#custodian-banner").waitFor({ state: "detached" });
  const after = await events(visitor);
  assert.equal(after.filter((e) => e.purpose === "cookie-analytics").at(-1).action, "refuse");
  await context.close();
});

await check("Global Privacy Control is recorded as an objection before any click", async () => {
  const context = await browser.newContext();
  await context.addInitScript(() => Object.defineProperty(Navigator.prototype, "globalPrivacyControl", { get: () => true }));
  const page = await context.newPage();
  await page.goto(`${base}/consent/preview`);
  await page.locator("#custodian-gpc").waitFor({ state: "visible" });
  await page.waitForFunction(() => localStorage.getItem("cookie_choices") !== null);
  const visitor = await page.evaluate(() => JSON.parse(localStorage.getItem("cookie_choices")).visitor);
  const recorded = await events(visitor);
  assert.ok(recorded.some((e) => e.action === "object" && e.method === "gpc" && e.purpose === null), JSON.stringify(recorded));
  // Analytics still needs a choice: the banner stays until one is made.
  assert.equal(await page.locator("#custodian-banner").count(), 1);
  await context.close();
});

await check("a choice made under a policy version the server cannot vouch for is asked again", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/consent/preview`);
  await page.evaluate(() => localStorage.setItem("cookie_choices", JSON.stringify({
    visitor: "old-visitor-0000000001", choices: { analytics: true, functional: false }, version: "1.9-unknown", decided: true, at: Date.now(),
  })));
  await page.reload();
  await page.locator("#custodian-banner").waitFor({ state: "visible" });
  await context.close();
});

await check("neither button is focused when the banner appears", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/consent/preview`);
  await page.locator("#custodian-banner").waitFor({ state: "visible" });
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.tagName);
  assert.notEqual(focused, "BUTTON");
  await context.close();
});

await check("a choice older than the lifetime the policy declares is asked again", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/consent/preview`);
  await page.locator("#custodian-banner").waitFor({ state: "visible" });
  await page.click("#custodian-reject");
  await page.locator("#custodian-banner").waitFor({ state: "detached" });
  const kept = await page.evaluate(() => JSON.parse(localStorage.getItem("cookie_choices")));
  assert.equal(typeof kept.at, "number", "the choice carries when it was made");
  // Still inside the lifetime (6 months in the reference policy): not asked.
  await page.evaluate(() => {
    const s = JSON.parse(localStorage.getItem("cookie_choices"));
    s.at = Date.now() - 170 * 86400000;
    localStorage.setItem("cookie_choices", JSON.stringify(s));
  });
  await page.reload();
  await page.waitForFunction(() => window.Custodian && window.Custodian.consent !== null);
  assert.equal(await page.locator("#custodian-banner").count(), 0);
  // Past it: asked again, and the stale choice is gone.
  await page.evaluate(() => {
    const s = JSON.parse(localStorage.getItem("cookie_choices"));
    s.at = Date.now() - 190 * 86400000;
    localStorage.setItem("cookie_choices", JSON.stringify(s));
  });
  await page.reload();
  await page.locator("#custodian-banner").waitFor({ state: "visible" });
  assert.equal(await page.evaluate(() => window.Custodian.consent), null);
  await context.close();
});

await check("rejecting a category after accepting it deletes its first-party cookies", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/consent/preview`);
  await page.locator("#custodian-banner").waitFor({ state: "visible" });
  await page.click("#custodian-accept");
  await page.locator("#custodian-banner").waitFor({ state: "detached" });
  // The site sets its functional cookie once it may.
  await page.evaluate(() => { document.cookie = "remember_login=yes; Path=/; Max-Age=2592000"; });
  assert.match(await page.evaluate(() => document.cookie), /remember_login=yes/);
  await page.click("#change");
  await page.locator("#custodian-banner").waitFor({ state: "visible" });
  await page.click("#custodian-reject");
  await page.locator("#custodian-banner").waitFor({ state: "detached" });
  const left = await page.evaluate(() => document.cookie);
  assert.doesNotMatch(left, /remember_login/, left);
  assert.match(left, /cookie_choices=/, "the record of the choice itself stays");
  await context.close();
});

await check("the cookie policy page has a working control to change the choice", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/cookies`);
  const banner = page.locator("#custodian-banner");
  await banner.waitFor({ state: "visible" });
  await page.click("#custodian-reject");
  await banner.waitFor({ state: "detached" });
  await page.click("#custodian-change");
  await banner.waitFor({ state: "visible" });
  await page.check("#custodian-banner input[name=analytics]");
  await page.click("#custodian-save");
  await banner.waitFor({ state: "detached" });
  assert.deepEqual(await page.evaluate(() => window.Custodian.consent), { analytics: true, functional: false });
  await context.close();
});

await browser.close();
process.exit(failed ? 1 : 0);
