// Checks that package-lock.json lets `npm ci` install on every platform we support.
//
//   node scripts/check-lock.mjs [package-lock.json]      exit 1 and one line per problem
//
// A lock written against a registry that did not serve some platform packages (it happened:
// wrangler's nested workerd lost its darwin and windows builds) looks fine on Linux but makes
// `npm ci` refuse it wherever the registry serves them. Two rules catch that:
//
// 1. every package a locked package names in `optionalDependencies` has its own entry in the
//    lock, resolved as npm resolves it (its own node_modules, then each parent's, then the
//    root's) and of a version the range admits, unless it could never install on a supported
//    platform. (The old lock passed a looser check: wrangler's workerd found the root's
//    darwin packages, of miniflare's workerd version.);
// 2. a package restricted to some `os`/`cpu` is optional, or `npm ci` fails (EBADPLATFORM) on
//    the others.
//
// Pure functions, exported for tests/lock/lock.test.mjs; the command line is at the bottom.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The platforms the lock must install on: npm's `os` / `cpu` names. */
export const PLATFORMS = [
  { os: 'linux', cpu: 'x64' },
  { os: 'linux', cpu: 'arm64' },
  { os: 'darwin', cpu: 'x64' },
  { os: 'darwin', cpu: 'arm64' },
  { os: 'win32', cpu: 'x64' },
];

/** The lock path where npm would find `name` when required from the package at `from`. */
export function resolve(packages, from, name) {
  let dir = from;
  for (;;) {
    const candidate = dir ? `${dir}/node_modules/${name}` : `node_modules/${name}`;
    if (packages[candidate]) return candidate;
    if (!dir) return null;
    const cut = dir.lastIndexOf('/node_modules/');
    dir = cut < 0 ? '' : dir.slice(0, cut);
  }
}

/**
 * Whether `version` satisfies `range`, for the ranges platform packages use: an exact version,
 * `^x.y.z`, `~x.y.z`, `>=x.y.z`. Anything else (tags, unions) is taken as satisfied: this check
 * is about missing entries, and npm ci itself rejects a lock whose versions do not fit.
 */
export function satisfies(version, range) {
  const parse = (v) => v?.match(/^(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$/)?.slice(1).map(Number);
  const v = parse(version);
  const m = range.trim().match(/^(\^|~|>=|=)?\s*v?(\d+\.\d+\.\d+(?:[-+].*)?)$/);
  if (!m) return true;
  const r = parse(m[2]);
  if (!v || !r) return version === m[2];
  const cmp = v[0] - r[0] || v[1] - r[1] || v[2] - r[2];
  switch (m[1]) {
    case '^': return cmp >= 0 && (r[0] > 0 ? v[0] === r[0] : r[1] > 0 ? v[0] === 0 && v[1] === r[1] : cmp === 0);
    case '~': return cmp >= 0 && v[0] === r[0] && v[1] === r[1];
    case '>=': return cmp >= 0;
    default: return version === m[2];
  }
}

/** Whether an `os`/`cpu` field (string or list, `!x` negations) admits `value`. */
function admits(field, value) {
  if (field === undefined) return true;
  const list = Array.isArray(field) ? field : [field];
  const negated = list.filter((f) => f.startsWith('!')).map((f) => f.slice(1));
  const plain = list.filter((f) => !f.startsWith('!'));
  if (negated.includes(value)) return false;
  return plain.length === 0 || plain.includes(value);
}

/** Whether a package with these `os`/`cpu` fields installs on one of `PLATFORMS`. */
export function installsSomewhere(entry) {
  return PLATFORMS.some((p) => admits(entry.os, p.os) && admits(entry.cpu, p.cpu));
}

/**
 * Problems of a parsed lock (lockfileVersion 2 or 3), one sentence each; empty when complete.
 * `platformOf(name)` may say what `os`/`cpu` an optional package that is absent from the lock
 * declares, when that is known without the registry: names that say their platform
 * (`@cloudflare/workerd-darwin-64`, `@esbuild/win32-x64`) are read by `platformFromName`.
 */
export function lockProblems(lock, platformOf = platformFromName) {
  const problems = [];
  const packages = lock.packages;
  if (!packages || typeof packages !== 'object') {
    return ['the lock has no "packages" map (lockfileVersion 2 or 3 is needed)'];
  }
  for (const [path, entry] of Object.entries(packages)) {
    if (path === '') continue;
    for (const [name, range] of Object.entries(entry.optionalDependencies ?? {})) {
      const found = resolve(packages, path, name);
      if (found && satisfies(packages[found].version, range)) continue;
      const declared = platformOf(name);
      if (declared && !installsSomewhere(declared)) continue;
      problems.push(
        found
          ? `${path} names optional dependency ${name}@${range}, but npm would find ${found}@${packages[found].version}`
          : `${path} names optional dependency ${name}@${range}, which has no entry in the lock`,
      );
    }
    if ((entry.os !== undefined || entry.cpu !== undefined) && !entry.optional) {
      problems.push(
        `${path} is restricted to os=${JSON.stringify(entry.os ?? 'any')} cpu=${JSON.stringify(
          entry.cpu ?? 'any',
        )} but is not optional: npm ci fails on other platforms`,
      );
    }
  }
  return problems;
}

/**
 * The platform a package's name states, for the naming schemes of the platform packages we
 * depend on; null when the name says none. Only used to skip platforms npm never installs here
 * (aix, freebsd, …): the supported five are always required.
 */
export function platformFromName(name) {
  const base = name.split('/').pop();
  const os = ['linux', 'darwin', 'win32', 'windows', 'android', 'freebsd', 'openbsd', 'netbsd', 'sunos', 'aix', 'openharmony']
    .find((o) => base.split('-').includes(o));
  if (!os) return null;
  const cpuWord = base.split('-').find((w) => /^(x64|64|arm64|arm|ia32|loong64|mips64el|ppc64|riscv64|s390x|wasm32)$/.test(w));
  const cpu = cpuWord === '64' ? 'x64' : cpuWord;
  return { os: os === 'windows' ? 'win32' : os, cpu };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2] ?? new URL('../package-lock.json', import.meta.url);
  const problems = lockProblems(JSON.parse(readFileSync(file, 'utf8')));
  for (const p of problems) console.error(`check-lock: ${p}`);
  if (problems.length) {
    console.error('check-lock: regenerate the lock against the full npm registry (npm install --package-lock-only) and commit it');
    process.exit(1);
  }
  console.log(`check-lock: complete for ${PLATFORMS.map((p) => `${p.os}-${p.cpu}`).join(', ')}`);
}
