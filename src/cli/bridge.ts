import { V1ToV2Bridge } from '../bridge/v1-to-v2';
import { RegistryError } from '../errors';
import { MetadataIndex } from '../index/metadata-index';
import { RepositoryIndex } from '../index/repository-index';
import { V1Index } from '../index/v1-index';
import { V2Index } from '../index/v2-index';
import { BlobStore } from '../storage/blob-store';
import { createDriver } from '../storage/factory';
import { LAYER_FORMATS, type LayerFormat } from '../storage/layer-analyzer';
import { V2Registry } from '../v2/registry';
import type { Command } from './dispatch';
import { count } from './format';
import { withIndex, type IndexDeps } from './index-access';
import type { CliIo } from './io';
import { Progress } from './progress';

// `registry bridge backfill`: what the v1 -> v2 bridge (docs/bridge.md) would otherwise do lazily, for images
// stored before it: every v1 layer whose compression and uncompressed digest are not known is read once and
// analyzed, then every v1 tag gets (or refreshes) its bridged v2 tag, so tags/list and _catalog show them at
// once. Safe while the server runs (each change is one short transaction); run it again at will.

const USAGE = 'usage: npm run registry -- bridge backfill\n';
const PAGE = 200;

export const bridgeHelp: Command['help'] = [
  ['bridge backfill', 'analyze v1 layers stored before the v1 -> v2 bridge and bridge every v1 tag to v2 now (else done on first pull)'],
];

export interface BackfillReport {
  layers: Partial<Record<LayerFormat, number>>;
  tags: number;
  /** v1 tags with no v2 form, with why. */
  skipped: { repo: string; tag: string; reason: string }[];
}

export async function bridgeCommand(args: string[], io: CliIo, deps: IndexDeps = {}): Promise<number> {
  if (args.length !== 1 || args[0] !== 'backfill') {
    io.stderr.write(`registry bridge: ${args.length ? `unknown argument ${JSON.stringify(args.join(' '))}` : 'which subcommand?'}\n${USAGE}`);
    return 2;
  }
  return withIndex(deps, async (db, config) => {
    const driver = await createDriver(config);
    const progress = new Progress(io.stderr);
    const report: BackfillReport = { layers: {}, tags: 0, skipped: [] };
    const core = new MetadataIndex(db);
    const blobs = new BlobStore(driver, core);
    try {
      const v1 = new V1Index(db, core);
      const v2Index = new V2Index(db, core);
      const v2 = new V2Registry(core, v2Index, blobs, new RepositoryIndex(db, core), { gcDelayMs: config.gc.delay * 1000 });
      const bridge = new V1ToV2Bridge(v1, v2Index, v2, blobs);

      const total = await v1.countUnanalyzedLayers();
      let done = 0;
      progress.update('bridge backfill layers', 0, total);
      for (let page = await v1.unanalyzedLayers('', PAGE); page.length > 0; page = await v1.unanalyzedLayers(page[page.length - 1]!, PAGE)) {
        for (const digest of page) {
          const info = await bridge.analyzeLayer(digest).catch(() => undefined); // a missing blob stays unknown
          if (info) report.layers[info.format] = (report.layers[info.format] ?? 0) + 1;
          progress.update('bridge backfill layers', ++done, total);
        }
      }
      progress.finish();

      if (config.protocols.bridge) {
        const tags = await v1.countV1Tags();
        done = 0;
        progress.update('bridge backfill tags', 0, tags);
        let after = { repo: '', tag: '' };
        for (let page = await v1.v1TagsAfter('', '', PAGE); page.length > 0; page = await v1.v1TagsAfter(after.repo, after.tag, PAGE)) {
          for (const t of page) {
            try {
              await bridge.sync(t.repo, t.tag);
              report.tags++;
            } catch (err) {
              if (!(err instanceof RegistryError)) throw err;
              report.skipped.push({ repo: t.repo, tag: t.tag, reason: err.message });
            }
            progress.update('bridge backfill tags', ++done, tags);
          }
          after = page[page.length - 1]!;
        }
        progress.finish();
      }
    } catch (err) {
      progress.abort();
      throw err;
    } finally {
      await blobs.settle(); // staged copies of the configs stored, before the driver closes
      await driver.close?.();
    }
    for (const s of report.skipped) io.stdout.write(`no v2 form: ${s.repo}:${s.tag}: ${s.reason}\n`);
    const formats = LAYER_FORMATS.filter((f) => report.layers[f]).map((f) => `${report.layers[f]} ${f}`).join(', ');
    io.stdout.write(
      `bridge backfill: ${count(Object.values(report.layers).reduce((a, n) => a + n, 0), 'layer')} analyzed${formats ? ` (${formats})` : ''}; ` +
        (config.protocols.bridge ? `${count(report.tags, 'v1 tag')} bridged to v2, ${report.skipped.length} without a v2 form\n` : 'protocols.bridge is off: no tags bridged\n'),
    );
    return 0;
  });
}
