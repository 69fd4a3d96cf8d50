'use strict';
// Row 4: BENCH_PAR_BLOBS parallel monolithic pushes of distinct BENCH_PAR_MB blobs (one repository per run).

const http = require('node:http');
const { MiB, mibps, now, secondsSince } = require('../lib/basics');
const { makeBlob } = require('../lib/bytes');
const { measure } = require('../lib/ab');
const { pushMonolithic } = require('../lib/v2-client');
const { PAR_BLOBS, PAR_MB } = require('../lib/options');

const DEF = { id: 'parallel', group: 'parallel', title: `4. ${PAR_BLOBS} parallel pushes of ${PAR_MB} MiB blobs (monolithic)`, unit: 'MiB/s', better: 'higher' };

async function run(ctx) {
  await measure(ctx, DEF, async (reg, pair) => {
    const blobs = [];
    for (let i = 0; i < PAR_BLOBS; i++) blobs.push(makeBlob(`par:${reg.id}:${pair}:${i}:${Date.now()}`, PAR_MB * MiB));
    const agent = new http.Agent({ keepAlive: true, maxSockets: PAR_BLOBS });
    const repo = `bench/parallel-${pair}`;
    try {
      const t = now();
      await Promise.all(blobs.map((b) => pushMonolithic(reg, repo, b, agent)));
      const seconds = secondsSince(t);
      for (const b of blobs) reg.dropBlobFile(b.digest);
      const total = PAR_BLOBS * PAR_MB * MiB;
      return { value: mibps(total, seconds), seconds };
    } finally {
      agent.destroy();
    }
  });
}

module.exports = { group: 'parallel', run };
