// `import wasmUrl from 'fhircast-sdk/wasm'`: the URL of the package's WebAssembly module, as
// bundlers give asset imports (Vite: append `?url`, i.e. 'fhircast-sdk/wasm?url'). Pass it to
// `init(wasmUrl)` when the bundler does not copy the .wasm next to the JS by itself.
declare const wasmUrl: string;
export default wasmUrl;
