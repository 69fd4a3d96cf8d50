import t from 'tap';
import { openDatabase } from '../../src/index/db';
import { MetadataIndex } from '../../src/index/metadata-index';
import { V1Index } from '../../src/index/v1-index';
import { tagJson } from '../../src/v1/registry';

// Request-derived names never reach Object.prototype (issue 22, item 6 d): a User-Agent word and a
// tag name are data, whatever they spell.

t.test('tag metadata takes only its own User-Agent fields', async (t) => {
  const meta = tagJson('constructor/x toString/y __proto__/z hasOwnProperty/w docker/1.5.0 os/linux');
  t.same(Object.keys(meta), ['docker_version', 'last_update', 'os']);
  t.equal(Object.getPrototypeOf(meta), Object.prototype);
});

t.test('a v1 tag named __proto__ or constructor is listed like any other', async (t) => {
  const db = openDatabase(':memory:');
  t.teardown(() => db.close());
  const core = new MetadataIndex(db);
  const v1 = new V1Index(db, core);
  for (const tag of ['__proto__', 'constructor', 'latest']) await v1.setV1Tag('a/b', tag, `id-${tag}`, '{}');
  const tags = await v1.listV1Tags('a/b');
  t.same(Object.entries(tags), [['__proto__', 'id-__proto__'], ['constructor', 'id-constructor'], ['latest', 'id-latest']]);
  t.equal(JSON.stringify(tags), '{"__proto__":"id-__proto__","constructor":"id-constructor","latest":"id-latest"}');
});
