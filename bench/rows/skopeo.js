'use strict';
// Rows 3a and 3b: skopeo push and pull of a BENCH_SKOPEO_MB image (OCI layout made here: gzip layer of
// random data + 2 small layers), blob-info cache wiped before each skopeo run, fresh repository and
// fresh oci: directory each run.

const fs = require('node:fs');
const path = require('node:path');
const { MiB, fmt, now, secondsSince } = require('../lib/basics');
const { measure } = require('../lib/ab');
const { makeOciLayout, blobList } = require('../lib/oci-image');
const { run: runTool } = require('../lib/processes');
const { SKOPEO_MB } = require('../lib/options');

const SKOPEO_CACHE = '/var/lib/containers/cache/blob-info-cache-v1.boltdb';
const PUSH = { id: 'skopeo-push', group: 'skopeo', title: `3a. skopeo push, ${SKOPEO_MB} MiB image`, unit: 's', better: 'lower' };
const PULL = { id: 'skopeo-pull', group: 'skopeo', title: `3b. skopeo pull, ${SKOPEO_MB} MiB image (to a fresh oci: dir)`, unit: 's', better: 'lower' };

async function run(ctx) {
  const layoutDir = path.join(ctx.tmp, 'oci-big');
  const tl = now();
  const layout = await makeOciLayout(layoutDir, SKOPEO_MB, `${Date.now()}`);
  console.log(`\n  OCI layout ${layoutDir}: ${fmt(layout.bytes / MiB)} MiB of blobs, made in ${fmt(secondsSince(tl), 1)} s`);
  const want = blobList(layoutDir);
  const stamp = Date.now();
  const repoOf = (reg, pair) => `bench/skopeo-${stamp}-${pair}`;
  const clearCache = () => fs.rmSync(SKOPEO_CACHE, { force: true });
  await measure(ctx, PUSH, async (reg, pair) => {
    clearCache();
    const r = await runTool('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layoutDir}:v1`, `docker://${reg.host}/${repoOf(reg, pair)}:v1`]);
    return { value: r.seconds, seconds: r.seconds };
  });
  await measure(ctx, PULL, async (reg, pair) => {
    clearCache();
    const dest = path.join(ctx.tmp, `pulled-${reg.id}-${pair}`);
    const r = await runTool('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/${repoOf(reg, pair)}:v1`, `oci:${dest}:v1`]);
    const got = blobList(dest);
    fs.rmSync(dest, { recursive: true, force: true });
    if (got.join() !== want.join()) throw new Error(`${reg.id} skopeo round trip: blobs differ\n  pushed ${want.join(' ')}\n  pulled ${got.join(' ')}`);
    return { value: r.seconds, seconds: r.seconds };
  });
  fs.rmSync(layoutDir, { recursive: true, force: true });
}

module.exports = { group: 'skopeo', run };
