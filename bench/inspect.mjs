// Memory of the hub's isolate, read through workerd's inspector (Miniflare's `inspectorPort`):
// V8's JS heap after a forced full GC (so lazy collection is not mistaken for growth) and the
// size of every WebAssembly.Memory (the Rust code's linear memory, which lives outside the JS
// heap and never shrinks). Used by bench/soak.mjs; loopback only.
import WebSocket from 'ws';

/**
 * Connects to the isolate's inspector target. workerd runs the Worker and its Durable Objects
 * in one isolate (one script), so there is one target.
 */
export async function connectInspector(port) {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
  const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  let seq = 0;
  const pending = new Map();
  const contexts = [];
  ws.on('message', (d) => {
    const m = JSON.parse(d);
    if (m.method === 'Runtime.executionContextCreated') contexts.push(m.params.context);
    const p = m.id && pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.error) p.reject(new Error(`${m.error.message} (${m.error.code})`));
    else p.resolve(m.result);
  });
  const send = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = ++seq;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
  await send('Runtime.enable');

  /** Byte sizes of every live WebAssembly.Memory in the isolate (found by prototype). */
  async function wasmMemories() {
    if (process.env.INSPECT_DEBUG) console.log(JSON.stringify(contexts));
    const contextId = contexts[0]?.id;
    const proto = await send('Runtime.evaluate', { expression: 'WebAssembly.Memory.prototype', contextId });
    const { objects } = await send('Runtime.queryObjects', { prototypeObjectId: proto.result.objectId });
    const sizes = await send('Runtime.callFunctionOn', {
      objectId: objects.objectId,
      functionDeclaration: 'function () { return this.map((m) => m.buffer.byteLength); }',
      returnByValue: true,
    });
    await send('Runtime.releaseObjectGroup', { objectGroup: '' }).catch(() => {});
    return sizes.result.value;
  }

  return {
    send,
    /** `{ heapMb, wasmMb, wasmCount }` after a forced full GC. */
    async measure() {
      await send('HeapProfiler.collectGarbage');
      const heap = await send('Runtime.getHeapUsage');
      const wasm = await wasmMemories();
      return {
        heapMb: heap.usedSize / 2 ** 20,
        wasmMb: wasm.reduce((a, b) => a + b, 0) / 2 ** 20,
        wasmCount: wasm.length,
      };
    },
    close: () => ws.close(),
  };
}
