// Replaces the bodies of functions the SDK never runs but the compiler cannot prove dead, so
// that wasm-opt then drops everything only they reach. Run by scripts/build-sdk.sh between
// wasm-bindgen and wasm-opt:  node scripts/snip-wasm.mjs <in.wasm> <out.wasm>
//
// The one function snipped: core's `<f64 as Display>::fmt` (with Grisu, Dragon4 and their
// tables: ~20 KB of wasm, ~8 KB gzipped). Nothing in the SDK formats a float. It stays in the
// module only because serde's `Unexpected` Display has a `Float` arm, reached through
// serde_json's error messages — but serde_json formats `Unexpected::Float` itself (with zmij,
// `JsonUnexpected`) and hands every other variant to serde's Display, so that arm never runs.
// The new body writes nothing and returns Ok: were the reasoning ever wrong, an error message
// would lack a number; nothing traps.
//
// It cannot go at the source: the reference is inside serde (`Unexpected`'s Display, via
// `WithDecimalPoint`), and no feature of serde or serde_json removes it.
//
// Loud by design: a pattern that matches nothing, or a match whose signature is not
// `(i32 self, i32 formatter) -> i32`, fails the build (exit 1) with the reason, rather than
// quietly shipping the module unsnipped or snipping something else. build-sdk.sh runs this
// on every build, so the build itself is the check.
import fs from 'node:fs';
import binaryen from 'binaryen';

const SNIP = [/^<f64 as core(\[[0-9a-f]+\])?::fmt::Display>::fmt$/];

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error('usage: node scripts/snip-wasm.mjs <in.wasm> <out.wasm>');
  process.exit(2);
}
function fail(why) {
  console.error(`snip-wasm: ${why}`);
  process.exit(1);
}

const mod = binaryen.readBinary(fs.readFileSync(input));
// The features scripts/build-sdk.sh gives wasm-opt (what wasm-bindgen's output uses). Not
// Features.All: that makes binaryen write encodings browsers reject.
const F = binaryen.Features;
mod.setFeatures(
  F.MVP | F.BulkMemory | F.BulkMemoryOpt | F.NontrappingFPToInt | F.SignExt | F.ReferenceTypes | F.Multivalue | F.MutableGlobals,
);
for (const pattern of SNIP) {
  let hits = 0;
  for (let i = 0; i < mod.getNumFunctions(); i++) {
    const func = mod.getFunctionByIndex(i);
    const info = binaryen.getFunctionInfo(func);
    if (!pattern.test(info.name)) continue;
    // fmt(&self, &mut Formatter) -> fmt::Result: two pointers in, Ok(()) is 0.
    const params = binaryen.expandType(info.params);
    if (info.results !== binaryen.i32 || params.length !== 2 || params.some((t) => t !== binaryen.i32)) {
      fail(`${info.name} has changed signature (expected (i32, i32) -> i32); not snipped`);
    }
    binaryen.Function.setBody(func, mod.i32.const(0));
    hits++;
    console.log(`snip-wasm: ${info.name} now returns Ok without writing`);
  }
  if (hits === 0) {
    fail(`no function matches ${pattern}: the toolchain renamed or inlined it; update SNIP (the module needs its name section: wasm-bindgen keeps it)`);
  }
}
if (!mod.validate()) fail('the module no longer validates');
fs.writeFileSync(output, mod.emitBinary());
