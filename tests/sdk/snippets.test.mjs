// Every code snippet of README.md and npm/README.md compiles under `tsc` with the settings of
// Vite's TypeScript template (strict, no unused locals or parameters), against the package's
// declarations: what a developer pasting them into a fresh Vite app gets (issue 15). The JS of
// ```js and ```ts blocks and of <script type="module"> in ```html blocks is checked; the few
// names the snippets leave to the app (its view, its banner, the SMART token response) are
// declared in a prelude. Written to a temporary directory: the checkout is not touched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './harness.mjs';

/** The snippets of a Markdown file: { line, code } for each checked block. */
function snippets(file) {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const out = [];
  const fence = /^```(\w+)\n([\s\S]*?)^```$/gm;
  for (let m; (m = fence.exec(text)); ) {
    const line = text.slice(0, m.index).split('\n').length + 1;
    if (m[1] === 'js' || m[1] === 'ts' || m[1] === 'tsx') out.push({ line, code: m[2], ext: m[1] === 'tsx' ? 'tsx' : 'ts' });
    if (m[1] === 'html') {
      const script = /<script type="module">\n([\s\S]*?)<\/script>/.exec(m[2]);
      if (script) out.push({ line: line + m[2].slice(0, script.index).split('\n').length, code: script[1], ext: 'ts' });
    }
  }
  return out;
}

const PRELUDE = `import type { CurrentContext, Resource, SmartTokenResponse, SyncStatus } from 'fhircast-sdk';
declare global {
  /** What the app's SMART library got from the token endpoint. */
  const tokenResponse: SmartTokenResponse & { access_token: string };
  /** The app's own view and banner. */
  const viewer: { canShow(patient: Resource): boolean; show(context: CurrentContext | null): void };
  const banner: { show(state: SyncStatus['state'], message?: string): void };
  function render(context: CurrentContext | null): void;
  function showBanner(status: SyncStatus): void;
}
export {};
`;

test("docs: every snippet of README.md and npm/README.md type-checks under Vite's strict TypeScript settings", () => {
  const dir = mkdtempSync(join(tmpdir(), 'fhircast-snippets-'));
  try {
    const files = [];
    const origin = {};
    for (const md of ['README.md', 'npm/README.md']) {
      for (const { line, code, ext } of snippets(md)) {
        const name = `${md.replace(/\W/g, '_')}_${line}.${ext}`;
        // Snippets that use a client they do not create get the one the docs are about.
        const needsClient = /\bclient\./.test(code) && !/\bconst client\b/.test(code);
        const head = needsClient ? "import type { FhircastClient } from 'fhircast-sdk';\ndeclare const client: FhircastClient;\n" : '';
        writeFileSync(join(dir, name), `${head}${code}\nexport {};\n`);
        files.push(name);
        origin[name] = `${md}:${line}`;
      }
    }
    assert.ok(files.length >= 5, `found ${files.length} snippets`);
    writeFileSync(join(dir, 'prelude.ts'), PRELUDE);
    // The testing section's app module, as examples/vitest has it (plain JS, types inferred).
    writeFileSync(join(dir, 'report-app.js'), readFileSync(join(ROOT, 'examples', 'vitest', 'report-app.js')));
    const npm = join(ROOT, 'npm');
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          // Vite 8's template (create-vite vanilla-ts), plus paths to the package's declarations.
          target: 'ES2022',
          useDefineForClassFields: true,
          module: 'ESNext',
          lib: ['ES2022', 'DOM', 'DOM.Iterable'],
          skipLibCheck: true,
          moduleResolution: 'bundler',
          allowImportingTsExtensions: true,
          verbatimModuleSyntax: true,
          moduleDetection: 'force',
          noEmit: true,
          strict: true,
          noUnusedLocals: true,
          noUnusedParameters: true,
          erasableSyntaxOnly: true,
          noFallthroughCasesInSwitch: true,
          noUncheckedSideEffectImports: true,
          // Vite's react-ts template adds these.
          jsx: 'react-jsx',
          allowJs: true,
          typeRoots: [join(ROOT, 'node_modules', '@types')],
          paths: {
            'fhircast-sdk': [join(npm, 'index.d.ts')],
            'fhircast-sdk/wasm': [join(npm, 'wasm.d.ts')],
            'fhircast-sdk/react': [join(npm, 'react.d.ts')],
            'fhircast-sdk/status': [join(npm, 'status.d.ts')],
            'fhircast-sdk/bridge': [join(npm, 'bridge.d.ts')],
            'fhircast-sdk/embedded': [join(npm, 'embedded.d.ts')],
            'fhircast-sdk/testing': [join(npm, 'testing.d.ts')],
            vitest: [join(ROOT, 'node_modules', 'vitest', 'dist', 'index.d.ts')],
            'react/jsx-runtime': [join(ROOT, 'node_modules', '@types', 'react', 'jsx-runtime.d.ts')],
            react: [join(ROOT, 'node_modules', '@types', 'react', 'index.d.ts')],
            'https://your.cdn.example/fhircast-sdk/pkg/index.js': [join(npm, 'index.d.ts')],
          },
        },
        files: ['prelude.ts', ...files],
      }),
    );
    const r = spawnSync(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', join(dir, 'tsconfig.json')], { encoding: 'utf8' });
    const report = (r.stdout + r.stderr).replace(/\S*fhircast-snippets-\w+\//g, '').replace(/(\w+_md_\d+\.tsx?)\((\d+),(\d+)\)/g, (_, f, l, c) => `${origin[f]} (snippet line ${l}, col ${c})`);
    assert.equal(r.status, 0, `the snippets do not compile:\n${report}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
