// End-to-end harness for the examples: the hub Worker in workerd (Miniflare) serving the
// examples' site (target/site, scripts/build-site.sh) as static assets on the same origin, as
// `wrangler dev` does with edge-hub/wrangler.toml [assets]; headless Chromium drives the pages.
//
//   const env = await setup();
//   const ehr = await env.ehr();                  // the EHR on a fresh session, in sync
//   const viewer = await env.app('/viewer/');     // an app launched with hub.url + hub.topic
//   await env.shot(ehr, 'ehr');                   // docs/screenshots/ehr.png
//   await env.teardown();
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startHub, ROOT, uid } from '../hub/harness.mjs';
import { withSmartDev } from '../../scripts/smart-dev.mjs';
import { launchBrowser } from '../sdk/harness.mjs';

export { eventually, sleep } from '../sdk/harness.mjs';
export { uid };

export const SITE = join(ROOT, 'target', 'site');
/** Where screenshots go: the README shows docs/screenshots. */
export const SHOTS = process.env.SCREENSHOT_DIR ?? join(ROOT, 'docs', 'screenshots');

/** The assets as wrangler dev serves them for wrangler.toml's [assets] (binding ASSETS). */
const ASSETS = { assets: { directory: SITE, binding: 'ASSETS', routerConfig: { has_user_worker: true } } };

export async function setup() {
  if (!existsSync(join(SITE, 'index.html')) || !existsSync(join(SITE, 'fhircast-sdk', 'pkg', 'fhircast_sdk_bg.wasm'))) {
    throw new Error(`${SITE} is missing or incomplete: run scripts/build-site.sh (make site)`);
  }
  const [hub, browser] = await Promise.all([startHub({ options: ASSETS, compose: withSmartDev }), launchBrowser()]);
  const context = await browser.newContext({ viewport: { width: 1280, height: 760 } });
  context.setDefaultTimeout(10000);
  const errors = [];
  const env = {
    hub,
    browser,
    context,
    topic: uid('session'),
    origin: hub.origin,
    /** Uncaught errors of every page (a test asserts there are none). */
    errors,
    /** Closes every page and starts another session (topic): one per test. */
    async fresh() {
      await Promise.all(context.pages().map((p) => p.close()));
      env.topic = uid('session');
    },
    /** A page of the site. */
    async open(path) {
      const page = await context.newPage();
      page.on('pageerror', (e) => errors.push(`${page.url()}: ${e.message}`));
      await page.goto(`${hub.origin}${path}`);
      return page;
    },
    /** The EHR on this env's session, connected and in sync (its iframe app too). */
    async ehr() {
      const page = await env.open(`/ehr/?topic=${env.topic}`);
      await inSync(page);
      await inSync(embedded(page));
      return page;
    },
    /** An app launched as a SMART app would be: hub.url and hub.topic in its URL. */
    async app(path) {
      const q = new URLSearchParams({ 'hub.url': `${hub.origin}/api/hub`, 'hub.topic': env.topic });
      const page = await env.open(`${path}?${q}`);
      await inSync(page);
      return page;
    },
    /** Saves a screenshot of `page` as <name>.png. */
    async shot(page, name) {
      mkdirSync(SHOTS, { recursive: true });
      await page.screenshot({ path: join(SHOTS, `${name}.png`) });
    },
    async teardown() {
      await Promise.allSettled([browser.close(), hub.stop()]);
    },
  };
  return env;
}

/** The embedded app inside the EHR's iframe. */
export const embedded = (ehrPage) => ehrPage.frameLocator('#embedded');

/** Waits until a page's (or frame's) banner says `state` (default in-sync). */
export async function inSync(pageOrFrame, { state = 'in-sync', timeout = 10000 } = {}) {
  await pageOrFrame.locator(`#banner[data-state="${state}"]`).waitFor({ timeout });
}

/**
 * Starts watching `selector` in a page or frame (playwright Frame): resolves later, through
 * `seenAt()`, with the wall-clock time (Date.now() in the page) at which its text first
 * contained `text`. Pages share the machine's clock, so times compare across pages.
 */
export async function watchText(frame, selector, text) {
  await frame.evaluate(
    ({ selector, text }) => {
      window.__seen ??= {};
      const el = document.querySelector(selector);
      const check = () => {
        if (!window.__seen[text] && el.textContent.includes(text)) window.__seen[text] = Date.now();
      };
      new MutationObserver(check).observe(el, { childList: true, subtree: true, characterData: true });
      check();
    },
    { selector, text },
  );
  return {
    seenAt: () =>
      frame.waitForFunction((text) => window.__seen?.[text], text, { timeout: 10000 }).then((h) => h.jsonValue()),
  };
}

/** Clicks `locator` and returns the page's Date.now() at the click. */
export async function clickAt(page, locator) {
  await page.evaluate(() => document.addEventListener('click', () => (window.__clickedAt = Date.now()), { capture: true, once: true }));
  await locator.click();
  return page.evaluate(() => window.__clickedAt);
}
