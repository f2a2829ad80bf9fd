// Runs an ONNX model in ONNX Runtime on a .npy batch and compares with expected outputs:
//   node bench/ort/ort_run.js MODEL.onnx IN.npy [EXPECTED.npy] [-o OUT.npy] [--threads N]
// Prints "MODEL: max abs error E over N values" (with EXPECTED) and exits 1 when E > 1e-4
// (--tol X changes the bound).  Needs CNNC_ORT_DIR (see ort_lib.js); prints "skipped" without.
'use strict';
const {loadOrt, readNpy, writeNpy, session} = require('./ort_lib.js');

async function main() {
  const argv = process.argv.slice(2);
  let threads = 1, out = null, tol = 1e-4;
  const pos = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--threads') threads = Number(argv[++i]);
    else if (argv[i] === '-o') out = argv[++i];
    else if (argv[i] === '--tol') tol = Number(argv[++i]);
    else pos.push(argv[i]);
  }
  if (pos.length < 2) {
    console.error('usage: node ort_run.js MODEL.onnx IN.npy [EXPECTED.npy] [-o OUT.npy] [--threads N] [--tol X]');
    process.exit(2);
  }
  const ort = loadOrt();
  if (!ort) process.exit(0);
  const [model, inFile, expFile] = pos;
  const s = await session(ort, model, threads);
  const x = readNpy(inFile);
  const feeds = {[s.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape)};
  const res = await s.run(feeds);
  const y = res[s.outputNames[0]];
  if (out) writeNpy(out, y.dims, y.data);
  if (expFile) {
    const e = readNpy(expFile);
    if (e.data.length !== y.data.length) {
      console.log(`${model}: ONNX Runtime gives [${y.dims}], expected [${e.shape}]`);
      process.exit(1);
    }
    let worst = 0;
    for (let i = 0; i < e.data.length; i++) {
      const d = Math.abs(e.data[i] - y.data[i]);
      if (!(d <= worst)) worst = d; // NaN counts as the worst
    }
    console.log(`${model}: max abs error ${worst.toExponential(2)} over ${e.data.length} values`);
    process.exit(worst <= tol ? 0 : 1);
  }
}

main().catch(e => { console.error(e.message); process.exit(1); });
