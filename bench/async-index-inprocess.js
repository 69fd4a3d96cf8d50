'use strict';
// The index work of a manifest GET by tag (the bridge's check, then resolve: three point lookups) in process,
// against each checkout's build: server CPU per GET without HTTP, so that the cost of the asynchronous index
// interface shows apart from the machine's noise. Interleaved, three runs of 100,000 each per build.
//
//   node bench/async-index-inprocess.js /path/to/baseline-checkout /path/to/this-checkout   (both built)

const path = require('node:path');
const os = require('node:os');
const fs = require('node:fs');

async function run(root) {
  const r = (m) => require(path.join(root, 'dist', m));
  const { openDatabase } = r('index/db');
  const { MetadataIndex } = r('index/metadata-index');
  const { V2Index } = r('index/v2-index');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-async-inprocess-'));
  const db = openDatabase(path.join(dir, 'i.db'));
  const core = new MetadataIndex(db);
  const v2 = new V2Index(db, core);
  const d = 'sha256:' + 'a'.repeat(64);
  await core.putBlob({ digest: d, size: 1, location: d });
  await v2.putManifest({ repo: 'a/b', digest: d, mediaType: 'x', size: 1, artifactType: null, subject: null, annotations: null }, [], 'v1');
  const { V2Registry } = r('v2/registry');
  const reg = new V2Registry(core, v2, null, null, {});
  const N = 100000;
  for (let k = 0; k < 3; k++) {
    const c0 = process.cpuUsage();
    for (let i = 0; i < N; i++) {
      await v2.tagAndV1Tag('a/b', 'v1');
      await reg.pull('a/b', 'v1');
    }
    const c = process.cpuUsage(c0);
    console.log(`${root}: ${((c.user + c.system) / N).toFixed(2)} us CPU per GET's index work (bridge check + pull)`);
  }
  db.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
(async () => {
  const roots = process.argv.slice(2);
  if (roots.length === 0) throw new Error('usage: node bench/async-index-inprocess.js ROOT...');
  for (const root of [...roots, ...roots]) await run(path.resolve(root));
})();
