// Times an ONNX model in ONNX Runtime (CPU, all graph optimisations, `--threads` intra-op
// threads, one inter-op thread) on a seeded random batch:
//   node bench/ort/ort_bench.js MODEL.onnx --batch N --threads T [--repeat R]
// Two warm-up runs, then R (10) timed runs; prints {"ms": median, "min": .., "max": ..} per batch.
'use strict';
const {loadOrt, session} = require('./ort_lib.js');

async function main() {
  const argv = process.argv.slice(2);
  let batch = 1, threads = 1, repeat = 10, model = null;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--batch') batch = Number(argv[++i]);
    else if (argv[i] === '--threads') threads = Number(argv[++i]);
    else if (argv[i] === '--repeat') repeat = Number(argv[++i]);
    else model = argv[i];
  }
  const ort = loadOrt();
  if (!ort) process.exit(0);
  const s = await session(ort, model, threads);
  // the input's shape from the model (the batch axis is dynamic)
  const meta = s.inputMetadata ? s.inputMetadata[0] : null;
  let dims = meta && meta.shape ? meta.shape.slice(1).map(Number) : null;
  if (!dims || dims.some(d => !(d > 0))) {
    console.error('cannot read the input shape from the model');
    process.exit(1);
  }
  const shape = [batch, ...dims];
  const data = new Float32Array(shape.reduce((a, d) => a * d, 1));
  let x = 12345;
  for (let i = 0; i < data.length; i++) { x = (x * 1103515245 + 12345) >>> 0; data[i] = x / 2 ** 32 * 2 - 1; }
  const feeds = {[s.inputNames[0]]: new ort.Tensor('float32', data, shape)};
  for (let i = 0; i < 2; i++) await s.run(feeds);
  const t = [];
  for (let i = 0; i < repeat; i++) {
    const t0 = process.hrtime.bigint();
    await s.run(feeds);
    t.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  t.sort((a, b) => a - b);
  console.log(JSON.stringify({ms: t[Math.floor(t.length / 2)], min: t[0], max: t[t.length - 1]}));
}

main().catch(e => { console.error(e.message); process.exit(1); });
