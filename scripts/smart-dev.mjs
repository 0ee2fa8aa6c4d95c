// Miniflare options for the hub with the dev SMART authorization server
// (scripts/smart-dev-worker.js) next to it, on the same origin under /smart/: what `make dev`
// and the examples' e2e tests run. The hub stays the first Worker, which gets every request
// the SMART Worker's route does not match.
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'smart-dev-worker.js');

/** `hubOptions` (tests/hub/harness.mjs miniflareOptions) as two Workers: the hub, then SMART. */
export function withSmartDev(hubOptions) {
  const { host, port, cf, durableObjectsPersist, ...hub } = hubOptions;
  return {
    host,
    port,
    cf,
    durableObjectsPersist,
    workers: [
      { name: 'hub', ...hub },
      {
        name: 'smart-dev',
        modules: true,
        scriptPath: SCRIPT,
        compatibilityDate: hub.compatibilityDate,
        routes: ['*/smart/*'],
      },
    ],
  };
}
