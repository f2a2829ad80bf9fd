// Writes a seeded random float32 batch: node bench/ort/make_input.js OUT.npy SEED N C [H [W [D]]]
'use strict';
const {writeNpy} = require('./ort_lib.js');
const [out, seed, ...dims] = process.argv.slice(2);
const shape = dims.map(Number);
let s = BigInt(seed) * 2654435761n + 1n;
const data = new Float32Array(shape.reduce((a, d) => a * d, 1));
for (let i = 0; i < data.length; i++) {
  s = (s * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
  data[i] = Number(s >> 40n) / 2 ** 24 * 2 - 1;
}
writeNpy(out, shape, data);
