// Helpers shared by the ONNX Runtime scripts beside this file: loading onnxruntime-node from
// $CNNC_ORT_DIR (never a build or test dependency), and reading/writing float32 .npy files.
'use strict';
const fs = require('fs');
const path = require('path');

// onnxruntime-node from $CNNC_ORT_DIR (a folder where `npm install --ignore-scripts
// onnxruntime-node` ran), or null with a message when it is not there.
function loadOrt() {
  const dir = process.env.CNNC_ORT_DIR;
  if (!dir) {
    console.log('skipped: set CNNC_ORT_DIR to a folder with onnxruntime-node installed ' +
                '(mkdir -p DIR && cd DIR && npm install --ignore-scripts onnxruntime-node)');
    return null;
  }
  try {
    return require(path.join(path.resolve(dir), 'node_modules', 'onnxruntime-node'));
  } catch (e) {
    console.log(`skipped: onnxruntime-node does not load from ${dir}: ${e.message}`);
    return null;
  }
}

function readNpy(file) {
  const b = fs.readFileSync(file);
  if (b.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = b[6];
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = b.toString('latin1', hstart, hstart + hlen);
  if (!/'descr':\s*'<f4'/.test(header) || /'fortran_order':\s*True/.test(header))
    throw new Error(`${file}: expected little-endian float32 in C order`);
  const shape = header.match(/'shape':\s*\(([^)]*)\)/)[1].split(',').map(s => s.trim()).filter(s => s).map(Number);
  const n = shape.reduce((a, d) => a * d, 1);
  const off = hstart + hlen;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = b.readFloatLE(off + 4 * i);
  return {shape, data};
}

function writeNpy(file, shape, data) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const h = Buffer.alloc(10);
  h.write('\x93NUMPY', 0, 'latin1');
  h[6] = 1; h[7] = 0;
  h.writeUInt16LE(header.length, 8);
  const body = Buffer.alloc(4 * data.length);
  for (let i = 0; i < data.length; i++) body.writeFloatLE(data[i], 4 * i);
  fs.writeFileSync(file, Buffer.concat([h, Buffer.from(header, 'latin1'), body]));
}

// A session with all graph optimisations and `threads` intra-op threads (one inter-op thread).
async function session(ort, model, threads) {
  return ort.InferenceSession.create(model, {
    intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential',
    executionProviders: ['cpu'],
  });
}

module.exports = {loadOrt, readNpy, writeNpy, session};
