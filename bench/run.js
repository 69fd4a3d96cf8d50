'use strict';
// Runs the benchmarks in sequence, each in its own node process (`npm run bench` builds first).
// Usage: node bench/run.js [name ...]   (no names: all of them, in the order below)
// Exit status is non-zero if any benchmark failed; later ones still run.

const path = require('node:path');
const { spawnSync } = require('node:child_process');

const BENCHMARKS = [
  'v1-layer.js',
  's3-blob.js',
  'gc.js',
  'side-by-side.js',
];

const wanted = process.argv.slice(2).map((n) => (n.endsWith('.js') ? n : `${n}.js`));
const unknown = wanted.filter((n) => !BENCHMARKS.includes(n));
if (unknown.length) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; known: ${BENCHMARKS.join(', ')}`);
  process.exit(2);
}

const failed = [];
for (const script of wanted.length ? wanted : BENCHMARKS) {
  console.log(`\n=== ${script} ===`);
  const r = spawnSync(process.execPath, [path.join(__dirname, script)], { stdio: 'inherit' });
  if (r.error || r.status !== 0) {
    failed.push(script);
    console.error(`=== ${script} failed (${r.error ? r.error.message : r.signal ? `signal ${r.signal}` : `exit ${r.status}`})`);
  }
}
if (failed.length) {
  console.error(`\n${failed.length} benchmark(s) failed: ${failed.join(', ')}`);
  process.exit(1);
}
