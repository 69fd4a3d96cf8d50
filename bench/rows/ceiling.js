'use strict';
// The client ceiling, after both registries have stopped: skopeo (rows 3a and 3b) and row 4's client
// against a null registry that hashes and stores nothing (bench/client-ceiling.js): the best any server
// could do here. The result goes to ctx.ceiling.

const { measureCeiling } = require('../client-ceiling');
const { PAIRS, SKOPEO_MB, PAR_BLOBS, PAR_MB } = require('../lib/options');

async function run(ctx) {
  console.log('\nClient ceiling: the clients of rows 3 and 4 against a null registry (in memory, no hashing, no disk)');
  ctx.ceiling = await measureCeiling({ runs: PAIRS, skopeoMiB: SKOPEO_MB, parBlobs: PAR_BLOBS, parMiB: PAR_MB, log: (line) => console.log(`  ${line}`) });
}

module.exports = { group: 'ceiling', afterRegistries: true, run };
