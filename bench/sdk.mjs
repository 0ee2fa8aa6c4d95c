// The browser SDK's figures: its size (npm/pkg as scripts/build-sdk.sh builds it), the time from
// a WebSocket message to the handler call in headless Chromium, and memory per connected client.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { serveStatic, launchBrowser, NPM } from '../tests/sdk/harness.mjs';
import { ROOT } from '../tests/hub/harness.mjs';
import { stats, eventBody, post } from './loadgen.mjs';

const PAGES = join(ROOT, 'bench', 'pages');

/** Raw and gzip -9 sizes of what a page loads: the wasm, its glue, and the facade. */
export function sdkSize() {
  const files = [join(NPM, 'pkg', 'fhircast_sdk_bg.wasm'), join(NPM, 'pkg', 'index.js')];
  const out = { files: {}, raw: 0, gzip: 0 };
  for (const f of files) {
    const b = readFileSync(f);
    const z = gzipSync(b, { level: 9 }).length;
    out.files[f.slice(NPM.length + 1)] = { raw: b.length, gzip: z };
    out.raw += b.length;
    out.gzip += z;
  }
  return out;
}

/**
 * In one page: a client connected to the hub in workerd handles `events` Patient-opens posted
 * one at a time; then `clients` more clients connect and the page's JS heap (after a forced GC)
 * and wasm memory growth are divided among them.
 */
export async function sdkInBrowser(hubServer, { events, clients }) {
  const server = await serveStatic({ '/npm/': NPM, '/bench/': PAGES });
  const browser = await launchBrowser();
  try {
    const page = await (await browser.newContext()).newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${server.origin}/bench/sdk.html`);
    await page.waitForFunction(() => window.ready || window.initError, null, { timeout: 15000 });
    const initError = await page.evaluate(() => window.initError);
    if (initError) throw new Error(`the SDK did not load: ${initError}`);
    const hubUrl = hubServer.base;
    const topic = `bench-sdk-${process.pid}`;
    await page.evaluate(async ({ hubUrl, topic }) => {
      window.client = await window.FhircastClient.connect({ hubUrl, topic, subscriberName: 'bench', on: { 'Patient-open': () => window.onPatientOpen() } });
    }, { hubUrl, topic });
    await page.waitForFunction(() => window.client.status().state === 'in-sync', null, { timeout: 10000 });
    const timestamp = new Date().toISOString();
    for (let i = 0; i < events + 3; i++) {
      const r = await post(hubUrl, eventBody(topic, { timestamp, patient: `p${i % 8}` }));
      if (r.status !== 202) throw new Error(`post: ${r.status} ${r.text}`);
      await page.waitForFunction((n) => window.latencies.length >= n, i + 1, { timeout: 10000, polling: 2 });
    }
    const lat = (await page.evaluate(() => window.latencies)).slice(3);

    const cdp = await page.context().newCDPSession(page);
    const measure = async () => {
      await cdp.send('HeapProfiler.collectGarbage');
      const heap = await cdp.send('Runtime.getHeapUsage');
      const wasm = await page.evaluate(() => window.wasmExports.memory.buffer.byteLength);
      return { js: heap.usedSize, wasm };
    };
    const before = await measure();
    await page.evaluate(async ({ hubUrl, topic, clients }) => {
      window.more = [];
      for (let i = 0; i < clients; i++) {
        window.more.push(await window.FhircastClient.connect({ hubUrl, topic, subscriberName: `c${i}`, on: { 'Patient-open': () => {} } }));
      }
    }, { hubUrl, topic, clients });
    await page.waitForFunction(() => window.more.every((c) => c.status().state === 'in-sync'), null, { timeout: 20000 });
    const after = await measure();
    if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
    return {
      handlerLatency: stats(lat),
      clients,
      jsHeapPerClientBytes: Math.round((after.js - before.js) / clients),
      wasmMemoryPerClientBytes: Math.round((after.wasm - before.wasm) / clients),
    };
  } finally {
    await browser.close().catch(() => {});
    await server.close();
  }
}
