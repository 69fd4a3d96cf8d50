// Versioned schema migrations, applied in order inside one transaction each.
// Never edit a released migration: append a new one.

export const MIGRATIONS: readonly string[] = [
  // 1: the shared blob store, repositories, uploads, the v1 protocol and search.
  `
  CREATE TABLE blobs (
    digest     TEXT PRIMARY KEY,          -- sha256:<hex>
    size       INTEGER NOT NULL,
    location   TEXT NOT NULL,             -- driver key of the object holding the bytes
    created_at INTEGER NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE repositories (
    name        TEXT PRIMARY KEY,         -- full name; v1 single names are stored as library/<name>
    description TEXT NOT NULL DEFAULT '',
    v1_private  INTEGER NOT NULL DEFAULT 0,
    v1_indexed  INTEGER NOT NULL DEFAULT 0, -- announced through the v1 index (PUT /v1/repositories/<repo>/)
    created_at  INTEGER NOT NULL
  );

  CREATE TABLE uploads (
    id         TEXT PRIMARY KEY,
    repo       TEXT,                      -- NULL for one-shot ingests (v1 layers, manifests)
    size       INTEGER NOT NULL DEFAULT 0,
    state      TEXT NOT NULL,             -- driver state, JSON
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX uploads_updated ON uploads(updated_at);

  CREATE TABLE v1_images (
    id          TEXT PRIMARY KEY,         -- 16 or 64 hex
    parent      TEXT,
    json_digest TEXT NOT NULL,            -- the image JSON exactly as uploaded, stored as a blob
    layer_digest TEXT,                    -- the layer exactly as uploaded, stored as a blob
    layer_size  INTEGER,
    checksum    TEXT,                     -- "sha256:" + sha256(json + "\\n" + layer), computed at layer PUT
    complete    INTEGER NOT NULL DEFAULT 0, -- 1 once the client's checksum matched (the old _inprogress rule)
    created_at  INTEGER NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE v1_tags (
    repo       TEXT NOT NULL,
    tag        TEXT NOT NULL,
    image_id   TEXT NOT NULL,
    meta       TEXT NOT NULL,             -- tag json (arch, docker_version, ... from the User-Agent)
    PRIMARY KEY (repo, tag)
  ) WITHOUT ROWID;

  CREATE TABLE v1_repo_images (           -- the index's image list (PUT /v1/repositories/<repo>/)
    repo      TEXT NOT NULL,
    image_id  TEXT NOT NULL,
    checksum  TEXT,
    position  INTEGER NOT NULL,
    PRIMARY KEY (repo, image_id)
  ) WITHOUT ROWID;

  -- Substring search over repository names and descriptions (trigram FTS5 also speeds up LIKE).
  CREATE VIRTUAL TABLE repo_search USING fts5(name, description, tokenize = 'trigram');
  CREATE TRIGGER repositories_ai AFTER INSERT ON repositories BEGIN
    INSERT INTO repo_search(rowid, name, description) VALUES (new.rowid, new.name, new.description);
  END;
  CREATE TRIGGER repositories_ad AFTER DELETE ON repositories BEGIN
    DELETE FROM repo_search WHERE rowid = old.rowid;
  END;
  CREATE TRIGGER repositories_au AFTER UPDATE OF name, description ON repositories BEGIN
    UPDATE repo_search SET name = new.name, description = new.description WHERE rowid = old.rowid;
  END;
  `,
  // 2: the v2 / OCI side: repository membership of blobs, manifests, tags, referrers.
  `
  CREATE TABLE repo_blobs (               -- blobs a repository may serve (uploads, mounts, manifests)
    repo   TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (repo, digest)
  ) WITHOUT ROWID;
  CREATE INDEX repo_blobs_digest ON repo_blobs(digest);

  CREATE TABLE manifests (
    repo          TEXT NOT NULL,
    digest        TEXT NOT NULL,          -- the manifest bytes are the blob with this digest
    media_type    TEXT NOT NULL,
    size          INTEGER NOT NULL,
    artifact_type TEXT,                   -- artifactType, else config.mediaType (what referrers report)
    subject       TEXT,                   -- OCI 1.1 subject digest
    annotations   TEXT,                   -- JSON object, for referrers
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (repo, digest)
  ) WITHOUT ROWID;
  CREATE INDEX manifests_subject ON manifests(repo, subject) WHERE subject IS NOT NULL;

  CREATE TABLE manifest_refs (            -- what a manifest points at (blobs, child manifests), for GC
    repo   TEXT NOT NULL,
    digest TEXT NOT NULL,
    child  TEXT NOT NULL,
    PRIMARY KEY (repo, digest, child)
  ) WITHOUT ROWID;

  CREATE TABLE tags (
    repo       TEXT NOT NULL,
    tag        TEXT NOT NULL,
    digest     TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (repo, tag)
  ) WITHOUT ROWID;
  CREATE INDEX tags_digest ON tags(repo, digest);
  `,
  // 3: tenant isolation. v1 images belong to a repository (an id is a name the client chose, not a
  // content digest, so one tenant's id must never reach another's bytes); uploads remember who opened
  // them and the digest verified before their bytes were moved into place.
  `
  ALTER TABLE v1_images RENAME TO v1_images_global;
  CREATE TABLE v1_images (
    repo        TEXT NOT NULL,
    id          TEXT NOT NULL,            -- 16 or 64 hex
    parent      TEXT,                     -- an image of the same repository
    json_digest TEXT NOT NULL,
    layer_digest TEXT,
    layer_size  INTEGER,
    checksum    TEXT,
    complete    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (repo, id)
  ) WITHOUT ROWID;
  -- Existing images go to every repository that listed or tagged them (as they were reachable
  -- before), with their ancestors, so every chain stays whole inside its repository.
  WITH RECURSIVE reach(repo, id) AS (
    SELECT repo, image_id FROM (SELECT repo, image_id FROM v1_repo_images UNION SELECT repo, image_id FROM v1_tags)
    UNION
    SELECT reach.repo, g.parent FROM reach JOIN v1_images_global g ON g.id = reach.id WHERE g.parent IS NOT NULL
  )
  INSERT INTO v1_images (repo, id, parent, json_digest, layer_digest, layer_size, checksum, complete, created_at)
  SELECT reach.repo, g.id, g.parent, g.json_digest, g.layer_digest, g.layer_size, g.checksum, g.complete, g.created_at
    FROM reach JOIN v1_images_global g ON g.id = reach.id;
  DROP TABLE v1_images_global;
  -- An image call without a token looks its id up among the repositories the caller may use.
  CREATE INDEX v1_images_by_id ON v1_images(id, repo);
  CREATE INDEX v1_repo_images_by_id ON v1_repo_images(image_id, repo);

  ALTER TABLE uploads ADD COLUMN owner TEXT;   -- user name, or "@<address>" for anonymous callers
  ALTER TABLE uploads ADD COLUMN digest TEXT;  -- verified digest, recorded before the bytes are moved
  CREATE INDEX uploads_owner ON uploads(owner) WHERE owner IS NOT NULL;
  `,
  // 4: garbage collection. A link remembers when it was made (a blob pushed for a manifest that has not
  // arrived yet is kept for gc.delay); blobs being deleted leave \`blobs\` for gc_doomed in the transaction
  // that checked nothing refers to them, so a concurrent push either sees them gone or keeps them.
  `
  ALTER TABLE repo_blobs ADD COLUMN linked_at INTEGER NOT NULL DEFAULT 0;
  UPDATE repo_blobs SET linked_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER);
  CREATE TABLE gc_doomed (
    digest    TEXT PRIMARY KEY,
    location  TEXT NOT NULL,
    size      INTEGER NOT NULL,
    doomed_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  -- One collection at a time (two would race each other's deletions): who holds it, and when it last said so.
  CREATE TABLE gc_lock (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
  );
  CREATE INDEX manifest_refs_child ON manifest_refs(repo, child);
  CREATE INDEX v1_images_json ON v1_images(json_digest);
  CREATE INDEX v1_images_layer ON v1_images(layer_digest) WHERE layer_digest IS NOT NULL;
  CREATE INDEX uploads_digest ON uploads(digest) WHERE digest IS NOT NULL;
  CREATE INDEX blobs_location ON blobs(location);
  `,
  // 5: storage lifecycle. Usage per repository, kept by triggers so every path that links or unlinks a
  // blob (pushes, mounts, manifests, v1 images, deletions, garbage collection) counts it: each blob once
  // per repository however many references it has there (repo_charges.refs). Last pull times for retention.
  `
  CREATE TABLE repo_charges (
    repo   TEXT NOT NULL,
    digest TEXT NOT NULL,
    size   INTEGER NOT NULL,
    refs   INTEGER NOT NULL,              -- links and v1 image references to this blob in this repository
    PRIMARY KEY (repo, digest)
  ) WITHOUT ROWID;
  CREATE INDEX repo_charges_digest ON repo_charges(digest);
  CREATE TABLE repo_usage (
    repo  TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL,
    blobs INTEGER NOT NULL
  ) WITHOUT ROWID;

  CREATE TRIGGER repo_charges_ai AFTER INSERT ON repo_charges BEGIN
    INSERT INTO repo_usage (repo, bytes, blobs) VALUES (new.repo, new.size, 1)
      ON CONFLICT (repo) DO UPDATE SET bytes = bytes + excluded.bytes, blobs = blobs + 1;
  END;
  CREATE TRIGGER repo_charges_ad AFTER DELETE ON repo_charges BEGIN
    UPDATE repo_usage SET bytes = bytes - old.size, blobs = blobs - 1 WHERE repo = old.repo;
    DELETE FROM repo_usage WHERE repo = old.repo AND blobs <= 0;
  END;

  CREATE TRIGGER repo_blobs_charge AFTER INSERT ON repo_blobs BEGIN
    INSERT INTO repo_charges (repo, digest, size, refs)
      VALUES (new.repo, new.digest, coalesce((SELECT size FROM blobs WHERE digest = new.digest), 0), 1)
      ON CONFLICT (repo, digest) DO UPDATE SET refs = refs + 1;
  END;
  CREATE TRIGGER repo_blobs_uncharge AFTER DELETE ON repo_blobs BEGIN
    UPDATE repo_charges SET refs = refs - 1 WHERE repo = old.repo AND digest = old.digest;
    DELETE FROM repo_charges WHERE repo = old.repo AND digest = old.digest AND refs <= 0;
  END;

  CREATE TRIGGER v1_images_charge AFTER INSERT ON v1_images BEGIN
    INSERT INTO repo_charges (repo, digest, size, refs)
      SELECT new.repo, d, coalesce((SELECT size FROM blobs WHERE digest = d), 0), 1
        FROM (SELECT new.json_digest AS d UNION SELECT new.layer_digest WHERE new.layer_digest IS NOT NULL) WHERE true
      ON CONFLICT (repo, digest) DO UPDATE SET refs = refs + 1;
  END;
  CREATE TRIGGER v1_images_uncharge AFTER DELETE ON v1_images BEGIN
    UPDATE repo_charges SET refs = refs - 1
     WHERE repo = old.repo AND digest IN (old.json_digest, old.layer_digest);
    DELETE FROM repo_charges WHERE repo = old.repo AND digest IN (old.json_digest, old.layer_digest) AND refs <= 0;
  END;
  CREATE TRIGGER v1_images_recharge AFTER UPDATE OF json_digest, layer_digest ON v1_images
    WHEN old.json_digest IS NOT new.json_digest OR old.layer_digest IS NOT new.layer_digest BEGIN
    UPDATE repo_charges SET refs = refs - 1
     WHERE repo = old.repo AND digest IN (old.json_digest, old.layer_digest);
    DELETE FROM repo_charges WHERE repo = old.repo AND digest IN (old.json_digest, old.layer_digest) AND refs <= 0;
    INSERT INTO repo_charges (repo, digest, size, refs)
      SELECT new.repo, d, coalesce((SELECT size FROM blobs WHERE digest = d), 0), 1
        FROM (SELECT new.json_digest AS d UNION SELECT new.layer_digest WHERE new.layer_digest IS NOT NULL) WHERE true
      ON CONFLICT (repo, digest) DO UPDATE SET refs = refs + 1;
  END;

  INSERT INTO repo_charges (repo, digest, size, refs)
    SELECT r.repo, r.digest, coalesce(b.size, 0), count(*) FROM (
      SELECT repo, digest FROM repo_blobs
      UNION ALL SELECT repo, json_digest FROM v1_images
      UNION ALL SELECT repo, layer_digest FROM v1_images WHERE layer_digest IS NOT NULL
    ) r LEFT JOIN blobs b ON b.digest = r.digest
    GROUP BY r.repo, r.digest;

  ALTER TABLE manifests ADD COLUMN pulled_at INTEGER;  -- last pull by digest or tag (written in batches)
  ALTER TABLE tags ADD COLUMN pulled_at INTEGER;       -- last pull by this tag (written in batches)
  `,
  // 6: the reference journal. Every change to what the index knows (blobs, repositories, links, manifests,
  // tags, v1 tags, images and lists; not uploads or pull times) leaves a JSON record in refs_outbox, by
  // trigger, in the transaction that makes it. Before a write is answered the records are written to
  // storage (src/refs/journal.ts), so storage alone can rebuild the index. The existing state is the first batch.
  `
  CREATE TABLE refs_outbox (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT, -- order of the changes; never reused (the journal replays by it)
    record TEXT NOT NULL
  );
  CREATE TRIGGER refs_blobs_ai AFTER INSERT ON blobs BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'blob', 'd', new.digest, 'n', new.size, 'l', new.location, 'c', new.created_at));
  END;
  CREATE TRIGGER refs_blobs_ad AFTER DELETE ON blobs BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'blob', 'd', old.digest, 'del', 1));
  END;
  CREATE TRIGGER refs_repos_ai AFTER INSERT ON repositories BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'repo', 'r', new.name, 'desc', new.description, 'v1p', new.v1_private, 'v1i', new.v1_indexed, 'c', new.created_at));
  END;
  CREATE TRIGGER refs_repos_au AFTER UPDATE OF description, v1_private, v1_indexed ON repositories BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'repo', 'r', new.name, 'desc', new.description, 'v1p', new.v1_private, 'v1i', new.v1_indexed, 'c', new.created_at));
  END;
  CREATE TRIGGER refs_repos_ad AFTER DELETE ON repositories BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'repo', 'r', old.name, 'del', 1));
  END;
  CREATE TRIGGER refs_links_ai AFTER INSERT ON repo_blobs BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'link', 'r', new.repo, 'd', new.digest, 'at', new.linked_at));
  END;
  CREATE TRIGGER refs_links_ad AFTER DELETE ON repo_blobs BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'link', 'r', old.repo, 'd', old.digest, 'del', 1));
  END;
  CREATE TRIGGER refs_manifests_ai AFTER INSERT ON manifests BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'man', 'r', new.repo, 'd', new.digest, 'mt', new.media_type, 'n', new.size, 'a', new.artifact_type, 'subj', new.subject, 'ann', new.annotations, 'c', new.created_at));
  END;
  CREATE TRIGGER refs_manifests_ad AFTER DELETE ON manifests BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'man', 'r', old.repo, 'd', old.digest, 'del', 1));
  END;
  CREATE TRIGGER refs_refs_ai AFTER INSERT ON manifest_refs BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'ref', 'r', new.repo, 'd', new.digest, 'ch', new.child));
  END;
  CREATE TRIGGER refs_refs_ad AFTER DELETE ON manifest_refs BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'ref', 'r', old.repo, 'd', old.digest, 'ch', old.child, 'del', 1));
  END;
  CREATE TRIGGER refs_tags_ai AFTER INSERT ON tags BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'tag', 'r', new.repo, 'g', new.tag, 'd', new.digest, 'u', new.updated_at));
  END;
  CREATE TRIGGER refs_tags_au AFTER UPDATE OF digest, updated_at ON tags BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'tag', 'r', new.repo, 'g', new.tag, 'd', new.digest, 'u', new.updated_at));
  END;
  CREATE TRIGGER refs_tags_ad AFTER DELETE ON tags BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'tag', 'r', old.repo, 'g', old.tag, 'del', 1));
  END;
  CREATE TRIGGER refs_v1tags_ai AFTER INSERT ON v1_tags BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'v1tag', 'r', new.repo, 'g', new.tag, 'i', new.image_id, 'm', new.meta));
  END;
  CREATE TRIGGER refs_v1tags_au AFTER UPDATE ON v1_tags BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'v1tag', 'r', new.repo, 'g', new.tag, 'i', new.image_id, 'm', new.meta));
  END;
  CREATE TRIGGER refs_v1tags_ad AFTER DELETE ON v1_tags BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'v1tag', 'r', old.repo, 'g', old.tag, 'del', 1));
  END;
  CREATE TRIGGER refs_v1images_ai AFTER INSERT ON v1_images BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'v1img', 'r', new.repo, 'i', new.id, 'p', new.parent, 'j', new.json_digest, 'l', new.layer_digest, 'n', new.layer_size, 'k', new.checksum, 'x', new.complete, 'c', new.created_at));
  END;
  CREATE TRIGGER refs_v1images_au AFTER UPDATE ON v1_images BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'v1img', 'r', new.repo, 'i', new.id, 'p', new.parent, 'j', new.json_digest, 'l', new.layer_digest, 'n', new.layer_size, 'k', new.checksum, 'x', new.complete, 'c', new.created_at));
  END;
  CREATE TRIGGER refs_v1images_ad AFTER DELETE ON v1_images BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'v1img', 'r', old.repo, 'i', old.id, 'del', 1));
  END;
  CREATE TRIGGER refs_v1list_ai AFTER INSERT ON v1_repo_images BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'v1list', 'r', new.repo, 'i', new.image_id, 'k', new.checksum, 'o', new.position));
  END;
  CREATE TRIGGER refs_v1list_au AFTER UPDATE ON v1_repo_images BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'v1list', 'r', new.repo, 'i', new.image_id, 'k', new.checksum, 'o', new.position));
  END;
  CREATE TRIGGER refs_v1list_ad AFTER DELETE ON v1_repo_images BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'v1list', 'r', old.repo, 'i', old.image_id, 'del', 1));
  END;

  INSERT INTO refs_outbox (record) SELECT json_object('t', 'blob', 'd', digest, 'n', size, 'l', location, 'c', created_at) FROM blobs;
  INSERT INTO refs_outbox (record) SELECT json_object('t', 'repo', 'r', name, 'desc', description, 'v1p', v1_private, 'v1i', v1_indexed, 'c', created_at) FROM repositories;
  INSERT INTO refs_outbox (record) SELECT json_object('t', 'link', 'r', repo, 'd', digest, 'at', linked_at) FROM repo_blobs;
  INSERT INTO refs_outbox (record) SELECT json_object('t', 'man', 'r', repo, 'd', digest, 'mt', media_type, 'n', size, 'a', artifact_type, 'subj', subject, 'ann', annotations, 'c', created_at) FROM manifests;
  INSERT INTO refs_outbox (record) SELECT json_object('t', 'ref', 'r', repo, 'd', digest, 'ch', child) FROM manifest_refs;
  INSERT INTO refs_outbox (record) SELECT json_object('t', 'tag', 'r', repo, 'g', tag, 'd', digest, 'u', updated_at) FROM tags;
  INSERT INTO refs_outbox (record) SELECT json_object('t', 'v1tag', 'r', repo, 'g', tag, 'i', image_id, 'm', meta) FROM v1_tags;
  INSERT INTO refs_outbox (record) SELECT json_object('t', 'v1img', 'r', repo, 'i', id, 'p', parent, 'j', json_digest, 'l', layer_digest, 'n', layer_size, 'k', checksum, 'x', complete, 'c', created_at) FROM v1_images;
  INSERT INTO refs_outbox (record) SELECT json_object('t', 'v1list', 'r', repo, 'i', image_id, 'k', checksum, 'o', position) FROM v1_repo_images;
  `,
  // 7: refs_outbox without AUTOINCREMENT. Its sqlite_sequence update was one more page and about half the
  // CPU of a small write transaction. Sequence numbers still never go back: the journal never prunes the
  // newest row, so max(seq) + 1 only grows, and a floor (a row with an empty record, never written to
  // storage) takes the place of the sequence value where the table had none above it.
  `
  CREATE TEMP TABLE outbox_copy AS SELECT seq, record FROM refs_outbox;
  INSERT INTO outbox_copy (seq, record) SELECT seq, '' FROM sqlite_sequence
    WHERE name = 'refs_outbox' AND seq > (SELECT coalesce(max(seq), 0) FROM refs_outbox);
  DROP TABLE refs_outbox;
  CREATE TABLE refs_outbox (
    seq    INTEGER PRIMARY KEY, -- order of the changes; never reused (the newest row is kept, see journal.ts)
    record TEXT NOT NULL        -- '' for a floor: numbers new records after it, is not itself written
  );
  INSERT INTO refs_outbox (seq, record) SELECT seq, record FROM outbox_copy;
  DROP TABLE outbox_copy;
  `,
  // 8: the v1 <-> v2 bridge (docs/bridge.md). Per v1 image, what its layer is (layer_format: gzip, tar, empty,
  // xz, bzip2, zstd, invalid) and the sha256 of its uncompressed tar (diff_id), found as the layer streams in
  // (or later, for older images); NULL until known. A v2 tag the bridge made from a v1 tag names the v1 image
  // it was made from (bridged_from_v1): such a tag follows its v1 tag, a pushed one (NULL) never does. Both
  // travel in the journal's records (the tag's mark cannot be recomputed from storage).
  // The other way, v2 images seen by v1 clients: which v1 id a manifest's chain ends in (NULL: it has none,
  // reason says why), and each synthesized v1 image (its JSON inline, its layer a blob of the manifest). Both
  // are recomputed from the manifests alone, the same every time: no journal records, and rows whose manifest
  // is gone are ignored.
  `
  CREATE TABLE v1_bridged (
    repo     TEXT NOT NULL,
    manifest TEXT NOT NULL,               -- a tagged manifest digest (image or index)
    top_id   TEXT,
    reason   TEXT,
    PRIMARY KEY (repo, manifest)
  ) WITHOUT ROWID;
  CREATE TABLE v1_bridged_images (
    repo         TEXT NOT NULL,
    id           TEXT NOT NULL,
    parent       TEXT,
    manifest     TEXT NOT NULL,           -- the image manifest it comes from
    json         TEXT NOT NULL,
    layer_digest TEXT NOT NULL,
    layer_size   INTEGER NOT NULL,
    PRIMARY KEY (repo, id)
  ) WITHOUT ROWID;
  CREATE INDEX v1_bridged_images_by_id ON v1_bridged_images(id, repo);

  ALTER TABLE v1_images ADD COLUMN diff_id TEXT;
  ALTER TABLE v1_images ADD COLUMN layer_format TEXT;
  ALTER TABLE tags ADD COLUMN bridged_from_v1 TEXT;
  CREATE INDEX v1_images_unanalyzed ON v1_images(repo, id) WHERE layer_format IS NULL AND layer_digest IS NOT NULL;

  DROP TRIGGER refs_tags_ai;
  DROP TRIGGER refs_tags_au;
  CREATE TRIGGER refs_tags_ai AFTER INSERT ON tags BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'tag', 'r', new.repo, 'g', new.tag, 'd', new.digest, 'u', new.updated_at, 'b', new.bridged_from_v1));
  END;
  CREATE TRIGGER refs_tags_au AFTER UPDATE OF digest, updated_at, bridged_from_v1 ON tags BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'tag', 'r', new.repo, 'g', new.tag, 'd', new.digest, 'u', new.updated_at, 'b', new.bridged_from_v1));
  END;
  DROP TRIGGER refs_v1images_ai;
  DROP TRIGGER refs_v1images_au;
  CREATE TRIGGER refs_v1images_ai AFTER INSERT ON v1_images BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'v1img', 'r', new.repo, 'i', new.id, 'p', new.parent, 'j', new.json_digest, 'l', new.layer_digest, 'n', new.layer_size, 'k', new.checksum, 'x', new.complete, 'c', new.created_at, 'df', new.diff_id, 'lf', new.layer_format));
  END;
  CREATE TRIGGER refs_v1images_au AFTER UPDATE ON v1_images BEGIN
    INSERT INTO refs_outbox (record) VALUES (json_object('t', 'v1img', 'r', new.repo, 'i', new.id, 'p', new.parent, 'j', new.json_digest, 'l', new.layer_digest, 'n', new.layer_size, 'k', new.checksum, 'x', new.complete, 'c', new.created_at, 'df', new.diff_id, 'lf', new.layer_format));
  END;
  `,
  // Webhook notifications (docs/notifications.md): one row per event and endpoint, written in the transaction of the
  // change it reports, deleted once the endpoint has it (or dropped past maxAge/maxRetries). Not a change to what the
  // index knows: no reference journal records (no triggers).
  `
  CREATE TABLE notify_outbox (
    seq        INTEGER PRIMARY KEY,     -- delivery order (per endpoint, so per repository too)
    endpoint   TEXT NOT NULL,           -- notifications.endpoints[].name
    repo       TEXT NOT NULL,
    event      TEXT NOT NULL,           -- the event JSON as it is sent (its id stays the same on every attempt)
    created_at INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
  );
  CREATE INDEX notify_outbox_endpoint ON notify_outbox(endpoint, seq);
  CREATE INDEX notify_outbox_created ON notify_outbox(created_at);
  `,
  // 10: the pull-through cache (docs/proxy.md). When a proxied tag was last confirmed upstream, and the digest
  // it named then: within proxy.upstreams[].tagTtl the tag is served without asking. Proxy-only, recomputable
  // state (a lost row only costs one upstream HEAD), so no journal triggers: the tags themselves are journaled.
  `
  CREATE TABLE proxy_tags (
    repo       TEXT NOT NULL,
    tag        TEXT NOT NULL,
    digest     TEXT NOT NULL,
    checked_at INTEGER NOT NULL,
    PRIMARY KEY (repo, tag)
  ) WITHOUT ROWID;
  `,
];
