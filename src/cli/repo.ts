import { MetadataIndex } from '../index/metadata-index';
import { RepositoryIndex } from '../index/repository-index';
import { assertRepositoryName } from '../names';
import type { Command } from './dispatch';
import { count } from './format';
import { withIndex, type IndexDeps } from './index-access';
import type { CliIo } from './io';

// `registry repo delete NAME`: the whole repository (v2 tags, manifests, blob links; v1 tags and images; its
// open uploads) in one transaction. Its bytes are freed by the next garbage collection, as far as no other
// repository shares them.

const USAGE = 'usage: npm run registry -- repo delete <name>\n';

export const repoHelp: Command['help'] = [['repo delete <name>', 'delete a repository and everything in it (gc frees the bytes)']];

export async function repoCommand(args: string[], io: CliIo, deps: IndexDeps = {}): Promise<number> {
  const [verb, name, ...rest] = args;
  if (verb !== 'delete' || name === undefined || rest.length > 0) {
    io.stderr.write(USAGE);
    return 2;
  }
  try {
    assertRepositoryName(name);
  } catch {
    io.stderr.write(`registry repo: ${JSON.stringify(name)} is not a repository name\n${USAGE}`);
    return 2;
  }
  return withIndex(deps, async (db) => {
    const deleted = await new RepositoryIndex(db, new MetadataIndex(db)).deleteRepository(name);
    if (!deleted) {
      io.stderr.write(`registry repo delete: no repository ${name}\n`);
      return 1;
    }
    const what = [
      count(deleted.tags, 'tag'),
      count(deleted.manifests, 'manifest'),
      count(deleted.blobs, 'blob link'),
      count(deleted.v1Tags, 'v1 tag'),
      count(deleted.v1Images, 'v1 image'),
      count(deleted.uploads, 'open upload'),
    ].join(', ');
    io.stdout.write(`repo delete: deleted ${name} (${what}); the next gc frees its bytes\n`);
    return 0;
  });
}
