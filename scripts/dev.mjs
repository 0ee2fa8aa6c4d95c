// `make dev`: the hub (edge-hub/build, as `make hub-build` builds it) in workerd through
// Miniflare, with the examples (target/site) as its static assets on the same origin, as
// wrangler.toml's [assets] serves them; state kept in target/dev-state across restarts.
//
// Why not `wrangler dev`: measured on this machine (issue 14), the same build under `wrangler
// dev` costs ~2-4x the CPU per event of the same build under Miniflare (fan-out p50 3.9 ms vs
// 1.8 ms at 1 subscriber, 17.2 ms vs 4.7 ms at 100). It is wrangler's own runtime set-up, not
// the hub: bypassing wrangler's proxy, disabling its local explorer, running its workerd binary
// or its bundle of the hub under Miniflare each leave the hub fast or slow as before (BENCHMARKS.md,
// "make dev"). `make dev-wrangler` still runs `wrangler dev` (it rebuilds on change).
//
// Env: DEV_HOST (127.0.0.1), DEV_PORT (8787), DEV_STATE (target/dev-state).
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Miniflare } from 'miniflare';
import { ROOT, miniflareOptions } from '../tests/hub/harness.mjs';
import { withSmartDev } from './smart-dev.mjs';

const host = process.env.DEV_HOST || '127.0.0.1';
const port = Number(process.env.DEV_PORT || 8787);
const state = process.env.DEV_STATE || join(ROOT, 'target', 'dev-state');
const site = join(ROOT, 'target', 'site');

if (!existsSync(join(site, 'index.html'))) {
  console.error(`${site} is missing: run make site (make dev does)`);
  process.exit(1);
}
mkdirSync(state, { recursive: true });

// With the dev SMART authorization server on the same origin (scripts/smart-dev-worker.js): the
// EHR example launches the viewer through it.
const mf = new Miniflare(
  withSmartDev(miniflareOptions({
    persist: join(state, 'do'),
    // Audit events off unless asked for (AUDIT_SINK=log make dev): the inspector shows the
    // same facts, and a log line per event would bury everything else.
    bindings: { AUDIT_SINK: process.env.AUDIT_SINK || 'off' },
    port,
    options: {
      host,
      assets: { directory: site, binding: 'ASSETS', routerConfig: { has_user_worker: true } },
    },
  })),
);
const url = await mf.ready;
const origin = `http://${host}:${url.port}`;
console.log(`
  Examples:     ${origin}/
  Inspector:    ${origin}/inspector/?topic=…
  FHIRcast hub: ${origin}/api/hub
  SMART (dev):  ${origin}/smart/fhir (authorize and token endpoints for the examples' launch)
  well-known:   ${origin}/api/hub/.well-known/fhircast-configuration
  state:        ${state} (delete it to start afresh)

  !! AUTH_MODE=open: no access tokens are checked. For local development only. !!
  !! Deployments set AUTH_MODE=jwt (README: Deploying).                         !!

  Ctrl-C stops it.
`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await mf.dispose().catch(() => {});
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
