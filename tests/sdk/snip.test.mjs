// scripts/snip-wasm.mjs (run by scripts/build-sdk.sh on every build) must fail the build loudly
// when the function it empties is missing or has changed shape, and otherwise empty exactly it.
// Small modules made with binaryen stand in for the SDK's (whose shipped copy has no names).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import binaryen from 'binaryen';
import { ROOT } from './harness.mjs';

const FMT = '<f64 as core[c5930c85a12de822]::fmt::Display>::fmt';

/** A module exporting `name` with the given params, returning 7 (so a snip shows as 0). */
function moduleWith(name, params) {
  const mod = new binaryen.Module();
  mod.addFunction(name, binaryen.createType(params), binaryen.i32, [], mod.i32.const(7));
  mod.addFunctionExport(name, 'f');
  mod.addFunction('other', binaryen.none, binaryen.i32, [], mod.i32.const(7));
  mod.addFunctionExport('other', 'other');
  binaryen.setDebugInfo(true); // keep the name section, as wasm-bindgen's output has it
  const bytes = mod.emitBinary();
  binaryen.setDebugInfo(false);
  mod.dispose();
  return bytes;
}

function snip(bytes) {
  const dir = mkdtempSync(join(tmpdir(), 'snip-'));
  try {
    writeFileSync(join(dir, 'in.wasm'), bytes);
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/snip-wasm.mjs'), join(dir, 'in.wasm'), join(dir, 'out.wasm')], {
      encoding: 'utf8',
    });
    let out = null;
    try {
      out = readFileSync(join(dir, 'out.wasm'));
    } catch {}
    return { status: r.status, stderr: r.stderr, stdout: r.stdout, out };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function call(bytes, exportName) {
  const { instance } = await WebAssembly.instantiate(bytes);
  return instance.exports[exportName](0, 0);
}

test('snip-wasm: empties <f64 as Display>::fmt to return Ok (0), and nothing else', async () => {
  const r = snip(moduleWith(FMT, [binaryen.i32, binaryen.i32]));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /now returns Ok without writing/);
  assert.equal(await call(r.out, 'f'), 0);
  assert.equal(await call(r.out, 'other'), 7);
});

test('snip-wasm: fails the build (exit 1, no output) when the function is not there', () => {
  const r = snip(moduleWith('<f32 as core::fmt::Display>::fmt', [binaryen.i32, binaryen.i32]));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /no function matches/);
  assert.equal(r.out, null);
});

test('snip-wasm: fails the build when the function has another signature', () => {
  const r = snip(moduleWith(FMT, [binaryen.f64, binaryen.i32]));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /changed signature/);
  assert.equal(r.out, null);
});
