'use strict';
// Rows 1a and 1b: blob push of a BENCH_BLOB_MB random blob, monolithic (POST, PUT ?digest= with the
// body, Content-Length) and chunked (POST, one streamed PATCH, PUT ?digest= without a body). Row 2a
// pulls the monolithic pushes' blobs (ctx.pushed) when it runs.

const { MiB, mibps, now, secondsSince } = require('../lib/basics');
const { makeBlob } = require('../lib/bytes');
const { measure } = require('../lib/ab');
const { pushMonolithic, pushChunked, headBlob } = require('../lib/v2-client');
const { BLOB_MB, wants } = require('../lib/options');

const ROWS = [
  [{ id: 'push-mono', group: 'push', title: `1a. blob push ${BLOB_MB} MiB, monolithic (POST + PUT with body)`, unit: 'MiB/s', better: 'higher' }, pushMonolithic],
  [{ id: 'push-chunked', group: 'push', title: `1b. blob push ${BLOB_MB} MiB, chunked (POST + one PATCH + PUT)`, unit: 'MiB/s', better: 'higher' }, pushChunked],
];

async function run(ctx) {
  const blobBytes = BLOB_MB * MiB;
  for (const [def, push] of ROWS) {
    await measure(ctx, def, async (reg, pair) => {
      const blob = makeBlob(`${def.id}:${reg.id}:${pair}:${Date.now()}`, blobBytes);
      const repo = `bench/${def.id}-${pair}`;
      const t = now();
      await push(reg, repo, blob);
      const seconds = secondsSince(t);
      const size = await headBlob(reg, repo, blob.digest);
      if (size !== blobBytes) throw new Error(`${reg.id} HEAD blob after push: size ${size}, expected ${blobBytes}`);
      if (def.id === 'push-mono' && wants('pull')) ctx.pushed[reg.id][pair] = { repo, digest: blob.digest };
      else reg.dropBlobFile(blob.digest);
      return { value: mibps(blobBytes, seconds), seconds };
    });
  }
}

module.exports = { group: 'push', run };
