// <fhircast-status>: `import { FhircastStatus } from 'fhircast-sdk/status'` defines the element.
import type { FhircastClient } from './index.js';

/**
 * A banner that shows whether the app shows the session's context and, when not, why (who
 * could not follow what). Set `client` once connected. Attributes: `quiet` hides it while in
 * sync. `data-state` reflects the state (`connecting`, `in-sync`, `out-of-sync`,
 * `disconnected`). Themable with `--fhircast-status-font`, `--fhircast-status-color`,
 * `--fhircast-status-padding`, `--fhircast-status-radius`, `--fhircast-status-connecting-bg`,
 * `--fhircast-status-in-sync-bg`, `--fhircast-status-out-of-sync-bg`,
 * `--fhircast-status-disconnected-bg`, and `::part(banner | title | detail)`. Its text is a live
 * region: polite in sync, assertive (`role="alert"`) out of sync or disconnected.
 */
export declare class FhircastStatus extends HTMLElement {
  client: FhircastClient | null;
}

declare global {
  interface HTMLElementTagNameMap {
    'fhircast-status': FhircastStatus;
  }
}
