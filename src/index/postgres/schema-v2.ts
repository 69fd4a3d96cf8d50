// PostgreSQL migration 2: no reference journal. On SQLite the journal's records (refs_outbox, written by
// triggers) go to storage so that `rebuild-index` can recover a lost index file; a PostgreSQL index is kept
// and backed up by PostgreSQL itself (replication, pg_dump, point-in-time recovery), and its records would
// pile up unread. Migration 1 stays SQLite's schema as it is (test/index/postgres-schema.test.ts).

const JOURNAL_TRIGGERS: [name: string, table: string][] = [
  ['refs_blobs_ai', 'blobs'],
  ['refs_blobs_ad', 'blobs'],
  ['refs_repos_ai', 'repositories'],
  ['refs_repos_au', 'repositories'],
  ['refs_repos_ad', 'repositories'],
  ['refs_links_ai', 'repo_blobs'],
  ['refs_links_ad', 'repo_blobs'],
  ['refs_manifests_ai', 'manifests'],
  ['refs_manifests_ad', 'manifests'],
  ['refs_refs_ai', 'manifest_refs'],
  ['refs_refs_ad', 'manifest_refs'],
  ['refs_tags_ai', 'tags'],
  ['refs_tags_au', 'tags'],
  ['refs_tags_ad', 'tags'],
  ['refs_v1tags_ai', 'v1_tags'],
  ['refs_v1tags_au', 'v1_tags'],
  ['refs_v1tags_ad', 'v1_tags'],
  ['refs_v1images_ai', 'v1_images'],
  ['refs_v1images_au', 'v1_images'],
  ['refs_v1images_ad', 'v1_images'],
  ['refs_v1list_ai', 'v1_repo_images'],
  ['refs_v1list_au', 'v1_repo_images'],
  ['refs_v1list_ad', 'v1_repo_images'],
];

export const SCHEMA_V2 = [
  ...JOURNAL_TRIGGERS.map(([name, table]) => `DROP TRIGGER ${name} ON ${table};\nDROP FUNCTION ${name}();`),
  'DELETE FROM refs_outbox;',
].join('\n');
