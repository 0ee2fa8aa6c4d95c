// Browser test harness for the SDK: a static server for npm/ and the test pages, headless
// Chromium through playwright-core, and the hub in workerd (tests/hub/harness.mjs).
//
//   const env = await setup({ bindings: { ACK_TIMEOUT_SECONDS: '2' } });   // hub + server + browser
//   const app = await env.app();            // a page that loaded the SDK (window.FhircastClient)
//   await app.connect({ events: ['Patient-open'], subscriberName: 'Viewer' });   // window.client
//   await app.until(() => client.status().state === 'in-sync');
//   await env.teardown();
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { join, extname, normalize, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startHub, ROOT, uid } from '../hub/harness.mjs';


export * from '../hub/harness.mjs';

export const PAGES = join(dirname(fileURLToPath(import.meta.url)), 'pages');
export const NPM = join(ROOT, 'npm');

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.css': 'text/css',
};

/**
 * A static server on 127.0.0.1. `mounts` maps URL prefixes to directories, e.g.
 * { '/npm/': NPM, '/pages/': PAGES }. Returns { origin, close }.
 */
export async function serveStatic(mounts, { port = 0 } = {}) {
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const prefix = Object.keys(mounts).find((p) => path.startsWith(p));
    if (!prefix) {
      res.writeHead(404).end('not found');
      return;
    }
    const file = normalize(join(mounts[prefix], path.slice(prefix.length)));
    if (!file.startsWith(mounts[prefix])) {
      res.writeHead(403).end();
      return;
    }
    try {
      if (!(await stat(file)).isFile()) throw new Error('not a file');
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { origin: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}

/** Headless Chromium as toolchain.md says (no downloads, no background traffic). */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}

/** Polls `fn` (in Node) until it returns a truthy value. */
export async function eventually(fn, { timeout = 5000, interval = 50, message = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${message}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A page of the test app, with what the SDK sent recorded:
 * - `requests`: every HTTP request the page made ({method, url, headers, body, status});
 * - `frames`: WebSocket frames ({dir: 'sent' | 'received', url, payload});
 * - `sockets`: the WebSocket URLs opened.
 */
export class App {
  constructor(page, env) {
    this.page = page;
    this.env = env;
    this.requests = [];
    this.frames = [];
    this.sockets = [];
    this.errors = [];
    const records = new WeakMap();
    page.on('request', (r) => {
      const rec = { method: r.method(), url: r.url(), headers: r.headers(), body: r.postData() };
      this.requests.push(rec);
      records.set(r, rec);
      // headers() lacks what the network stack adds (Origin); allHeaders() has it.
      r.allHeaders().then((h) => (rec.headers = h), () => {});
    });
    // The answer's status (`rec.status`), or `rec.failed` for a request that got none.
    page.on('response', (res) => {
      const rec = records.get(res.request());
      if (rec) rec.status = res.status();
    });
    page.on('requestfailed', (r) => {
      const rec = records.get(r);
      if (rec) rec.failed = r.failure()?.errorText ?? 'failed';
    });
    page.on('websocket', (ws) => {
      this.sockets.push(ws.url());
      ws.on('framesent', (f) => this.frames.push({ dir: 'sent', url: ws.url(), payload: String(f.payload) }));
      ws.on('framereceived', (f) => this.frames.push({ dir: 'received', url: ws.url(), payload: String(f.payload) }));
    });
    page.on('pageerror', (e) => this.errors.push(e));
  }

  /** Runs `fn(arg)` in the page. */
  eval(fn, arg) {
    return this.page.evaluate(fn, arg);
  }

  /** Waits until `fn(arg)` is truthy in the page. */
  async until(fn, arg, { timeout = 5000 } = {}) {
    await this.page.waitForFunction(fn, arg, { timeout, polling: 50 });
  }

  /** The hub's address and this app's topic, for page code. */
  get hub() {
    return { hubUrl: this.env.hub.base, topic: this.env.hub.topic };
  }

  /**
   * Connects window.client with `options` (hubUrl and topic default to the env's) and records
   * its callbacks into window.log. `handlers` is page-side source: an object literal of event
   * handlers, e.g. "{ 'Patient-open': () => 'refuse' }".
   */
  async connect(options = {}, handlers = '{}') {
    return this.page.evaluate(
      async ({ options, handlers }) => {
        const on = (0, eval)(`(${handlers})`);
        window.client = await window.FhircastClient.connect({ ...options, on, ...window.recorders() });
        return window.client.status();
      },
      { options: { ...this.hub, ...options }, handlers },
    );
  }

  /** Acks the SDK sent, as {id, status}. */
  acks() {
    return this.frames
      .filter((f) => f.dir === 'sent')
      .map((f) => JSON.parse(f.payload))
      .filter((m) => m.id && m.status !== undefined);
  }

  log() {
    return this.page.evaluate(() => window.log);
  }
}

/** Starts the hub, the static server and Chromium. */
export async function setup({ bindings = {}, mounts = {} } = {}) {
  const [hub, server, browser] = await Promise.all([
    startHub({ bindings }),
    serveStatic({ '/npm/': NPM, '/pages/': PAGES, ...mounts }),
    launchBrowser(),
  ]);
  const env = {
    hub,
    server,
    browser,
    /** A new page (own browser context) with the SDK loaded; `topic` defaults to a fresh one. */
    async app({ page: path = '/pages/app.html', origin = server.origin, topic } = {}) {
      if (topic) hub.topic = topic;
      const context = await browser.newContext();
      const page = await context.newPage();
      const app = new App(page, env);
      await page.goto(`${origin}${path}`);
      await page.waitForFunction(() => window.ready === true || window.initError, null, { timeout: 10000 });
      const initError = await page.evaluate(() => window.initError);
      if (initError) throw new Error(`the SDK did not load: ${initError}`);
      return app;
    },
    async teardown() {
      await Promise.allSettled([browser.close(), server.close(), hub.stop()]);
    },
  };
  return env;
}
