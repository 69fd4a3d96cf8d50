'use strict';
// What the asynchronous index interface (docs/development.md, "Index interface") costs: this build against
// another checkout's (the synchronous index), side by side in one run: interleaved rounds (the order
// alternates), medians, so the machine's noise falls on both alike.
//
//   npm run build && node bench/async-index.js /path/to/baseline-checkout   (built too)
//   BENCH_ROUNDS (5), BENCH_SECONDS (5), BENCH_CONNECTIONS (64), BENCH_SMALL (30)
//
// Rows per round and server: BENCH_SMALL small images pushed one after the other (config + 4 KiB layer +
// manifest, images/s); the same pushed by 8 clients at once (transactions contend); manifest GET by tag
// under wrk (req/s). Beside each rate, the server's CPU time per unit of work (/proc).

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { now, secondsSince, fmt, positiveInt, medianRow, table } = require('./lib/basics');
const { rateRun, wrkScript } = require('./lib/load');
const { smallImage, pushSmallImage } = require('./lib/oci-image');
const { cpuSeconds } = require('./lib/procfs');
const { Registry } = require('./lib/registry');
const { ACCEPT_MANIFEST } = require('./lib/v2-client');

const ROUNDS = positiveInt('BENCH_ROUNDS', 5);
const SECONDS = positiveInt('BENCH_SECONDS', 5);
const CONNECTIONS = positiveInt('BENCH_CONNECTIONS', 64);
const SMALL = positiveInt('BENCH_SMALL', 30);
const PARALLEL = 8;
const MANIFEST = '/v2/bench/small/manifests/v1';

async function main() {
  const baseRoot = process.argv[2];
  if (!baseRoot || !fs.existsSync(path.join(baseRoot, 'dist', 'server.js'))) throw new Error('usage: node bench/async-index.js /path/to/built/baseline-checkout');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-async-'));
  const common = { REGISTRY_GC_INTERVAL: '0', REGISTRY_LOG_LEVEL: 'warn' };
  const servers = [
    { name: 'baseline', reg: new Registry('ours', path.join(tmp, 'base'), common, { root: path.resolve(baseRoot) }) },
    { name: 'this build', reg: new Registry('ours', path.join(tmp, 'this'), common) },
  ];
  const results = new Map(servers.map((s) => [s.name, { small: [], parallel: [], get: [], smallCpu: [], parallelCpu: [], getCpu: [] }]));
  try {
    for (const s of servers) await s.reg.start();
    const image = smallImage();
    for (const s of servers) await pushSmallImage(s.reg, 'bench/small', image, ['v1']);
    const script = wrkScript(path.join(tmp, 'get.lua'), 'GET', ACCEPT_MANIFEST);

    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? servers : [...servers].reverse();
      for (const { name, reg } of order) {
        const r = results.get(name);
        let t = now();
        let cpu = cpuSeconds(reg.pid);
        for (let i = 0; i < SMALL; i++) await pushSmallImage(reg, `bench/small-${round}`, smallImage(), [`t${i}`]);
        r.small.push(SMALL / secondsSince(t));
        r.smallCpu.push(((cpuSeconds(reg.pid) - cpu) * 1000) / SMALL); // ms per image

        t = now();
        cpu = cpuSeconds(reg.pid);
        await Promise.all(
          Array.from({ length: PARALLEL }, async (_, c) => {
            for (let i = 0; i < SMALL / 2; i++) await pushSmallImage(reg, `bench/par-${round}-${c}`, smallImage(), [`t${i}`]);
          }),
        );
        const n = PARALLEL * Math.floor(SMALL / 2);
        r.parallel.push(n / secondsSince(t));
        r.parallelCpu.push(((cpuSeconds(reg.pid) - cpu) * 1000) / n);

        cpu = cpuSeconds(reg.pid);
        const w = await rateRun(reg.url(MANIFEST).href, script, ACCEPT_MANIFEST, { threads: 2, connections: CONNECTIONS, seconds: SECONDS });
        r.get.push(w.value);
        r.getCpu.push(((cpuSeconds(reg.pid) - cpu) * 1e6) / w.requests); // us per request
        console.log(
          `round ${round + 1}/${ROUNDS} ${name}: small ${fmt(r.small.at(-1), 1)} images/s (${fmt(r.smallCpu.at(-1), 2)} ms CPU each), ` +
            `${PARALLEL} pushers ${fmt(r.parallel.at(-1), 1)} images/s (${fmt(r.parallelCpu.at(-1), 2)} ms CPU each), GET ${fmt(w.value, 0)} req/s (${fmt(r.getCpu.at(-1), 1)} us CPU each)`,
        );
      }
    }
  } finally {
    for (const s of servers) await s.reg.stop().catch(() => undefined);
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  const [a, b] = servers.map((s) => results.get(s.name));
  const row = (title, key, digits) => medianRow(a, b, title, key, digits);
  console.log(`\nmedians of ${ROUNDS} interleaved rounds\n`);
  console.log(
    table(
      [
        row('small image push, sequential (images/s)', 'small', 1),
        row(`small image push, ${PARALLEL} pushers (images/s)`, 'parallel', 1),
        row(`manifest GET by tag, ${CONNECTIONS} connections (req/s)`, 'get', 0),
        row('  server CPU per small image, sequential (ms)', 'smallCpu', 2),
        row(`  server CPU per small image, ${PARALLEL} pushers (ms)`, 'parallelCpu', 2),
        row('  server CPU per manifest GET (us)', 'getCpu', 1),
      ],
      ['', 'baseline', 'this build', 'this vs baseline'],
    ),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
