'use strict';
// rebuild-index and check --sample at scale: an index of BENCH_REPOS repositories x BENCH_TAGS tags is
// generated directly (SQL, not pushes), its journal written to storage the way the server writes it, the
// index deleted, then rebuilt; then compacted into a snapshot and rebuilt from that. Reports the time and the process's peak RSS for each step.
//
//   npm run build && node bench/rebuild.js        (BENCH_REPOS=10000 BENCH_TAGS=10 by default)

const { execFileSync } = require('node:child_process');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const dist = path.resolve(__dirname, '..', 'dist');
const { defaultConfig } = require(path.join(dist, 'config/load'));
const { openDatabase } = require(path.join(dist, 'index/db'));
const { createDriver } = require(path.join(dist, 'storage/factory'));
const { flushJournal } = require(path.join(dist, 'refs/journal'));
const { rebuildIndex } = require(path.join(dist, 'refs/rebuild'));
const { checkRegistry } = require(path.join(dist, 'refs/check'));
const { compactJournal } = require(path.join(dist, 'refs/snapshot'));

const REPOS = Number(process.env.BENCH_REPOS ?? 10_000);
const TAGS = Number(process.env.BENCH_TAGS ?? 10);

let peak = 0;
const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
const mib = (b) => `${(b / 1048576).toFixed(0)} MiB`;

async function step(name, fn) {
  peak = process.memoryUsage().rss;
  const t0 = Date.now();
  const out = await fn();
  console.log(`${name}: ${((Date.now() - t0) / 1000).toFixed(1)} s, peak RSS ${mib(Math.max(peak, process.memoryUsage().rss))}`);
  return out;
}

const configIn = (dir) => defaultConfig({ storage: { local: { root: path.join(dir, 'blobs'), fsync: false } }, index: { path: path.join(dir, 'index.db') } });

async function rebuildOnly(dir) {
  const t0 = Date.now();
  const report = await rebuildIndex(configIn(dir));
  const hwm = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1];
  console.log(`rebuild-index from the snapshot: ${((Date.now() - t0) / 1000).toFixed(1)} s, peak RSS ${mib(Number(hwm) * 1024)}`);
  console.log(`  ${report.repositories} repositories, ${report.tags} tags, ${report.blobs} blobs; ${report.problemCount} problems`);
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-rebuild-'));
  const config = configIn(dir);
  try {
    const driver = await createDriver(config);
    await step(`generate ${REPOS} repositories x ${TAGS} tags (index rows and blob files)`, async () => {
      const db = openDatabase(config.index.path);
      const blob = db.prepare('INSERT INTO blobs (digest, size, location, created_at) VALUES (?, ?, ?, 1) ON CONFLICT DO NOTHING');
      const repo = db.prepare('INSERT INTO repositories (name, created_at) VALUES (?, 1)');
      const link = db.prepare('INSERT INTO repo_blobs (repo, digest, linked_at) VALUES (?, ?, 1) ON CONFLICT DO NOTHING');
      const man = db.prepare("INSERT INTO manifests (repo, digest, media_type, size, created_at) VALUES (?, ?, 'application/vnd.oci.image.manifest.v1+json', 100, 1)");
      const ref = db.prepare('INSERT INTO manifest_refs (repo, digest, child) VALUES (?, ?, ?)');
      const tag = db.prepare('INSERT INTO tags (repo, tag, digest, updated_at) VALUES (?, ?, ?, ?)');
      const store = (content) => {
        const hex = createHash('sha256').update(content).digest('hex');
        const key = `blobs/sha256/${hex.slice(0, 2)}/${hex}`;
        const file = path.join(config.storage.local.root, key);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, content);
        blob.run(`sha256:${hex}`, content.length, key);
        return `sha256:${hex}`;
      };
      const base = store('shared base layer');
      for (let r = 0; r < REPOS; r++) {
        const name = `team-${r % 100}/app-${r}`;
        db.transaction(() => {
          repo.run(name);
          link.run(name, base);
          for (let t = 0; t < TAGS; t++) {
            const config = store(`config ${name} ${t}`);
            const manifest = store(`manifest ${name} ${t}`);
            link.run(name, config);
            link.run(name, manifest);
            man.run(name, manifest);
            ref.run(name, manifest, config);
            ref.run(name, manifest, base);
            tag.run(name, `v${t}`, manifest, t);
          }
        })();
      }
      await flushJournal(db, driver);
      db.close();
    });
    const segments = fs.readdirSync(path.join(config.storage.local.root, 'refs', 'journal')).length;
    console.log(`journal: ${segments} segments`);
    for (const suffix of ['', '-wal', '-shm']) fs.rmSync(config.index.path + suffix, { force: true });
    const report = await step('rebuild-index', () => rebuildIndex(config));
    console.log(`  ${report.repositories} repositories, ${report.tags} tags, ${report.manifests} manifests, ${report.blobs} blobs from ${report.records} records; ${report.problemCount} problems`);
    const db = openDatabase(config.index.path);
    const checked = await step('check --sample 1000', () => checkRegistry(db, driver, { sample: 1000 }));
    console.log(`  ${checked.blobsChecked} blobs re-hashed, ${checked.badBlobs.length} bad, ${checked.referenceCount} broken references`);
    db.close();
    // The same state again, from a snapshot instead of the journal.
    const compacted = await step('compact-journal', () => compactJournal(config.index.path, driver));
    console.log(`  ${compacted.records} records in ${compacted.parts} parts; ${compacted.segmentsDeleted} segments deleted`);
    for (const suffix of ['', '-wal', '-shm']) fs.rmSync(config.index.path + suffix, { force: true });
    // In a process of its own, as the CLI runs it: its peak RSS is its own, not this one's high-water mark.
    process.stdout.write(execFileSync(process.execPath, [__filename, '--rebuild', dir], { encoding: 'utf8' }));
    await driver.close?.();
  } finally {
    clearInterval(sampler);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

(process.argv[2] === '--rebuild' ? rebuildOnly(process.argv[3]).finally(() => clearInterval(sampler)) : main()).catch((err) => {
  console.error(err);
  process.exit(1);
});
