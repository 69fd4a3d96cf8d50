import type { Dialects } from './json-list';

// Which manifests of a repository are kept: those `seed` names (tags, young manifests), the children of kept
// indexes and the referrers (subject) of kept manifests, as a recursive CTE `kept(digest)` over @repo.
// Garbage collection deletes what it does not reach; retention deletes what a removal stops reaching.
// PostgreSQL allows one recursive reference, so there the two steps are one LATERAL join; SQLite keeps two
// recursive branches, each seeking its index per kept row (a join against a UNION ALL of both steps would
// rescan the repository's references for every kept row there).

/** `WITH RECURSIVE kept(digest) AS (...)` in each dialect; `seed` selects the digests kept to begin with. */
export function keptManifests(seed: string): Dialects {
  return {
    sqlite: `WITH RECURSIVE kept(digest) AS (
       ${seed}
       UNION SELECT r.child FROM manifest_refs r JOIN kept k ON r.repo = @repo AND r.digest = k.digest
       UNION SELECT m.digest FROM manifests m JOIN kept k ON m.repo = @repo AND m.subject = k.digest
     )`,
    postgres: `WITH RECURSIVE kept(digest) AS (
       ${seed}
       UNION SELECT e.digest FROM kept k CROSS JOIN LATERAL (
           SELECT r.child AS digest FROM manifest_refs r WHERE r.repo = @repo AND r.digest = k.digest
           UNION ALL SELECT m.digest FROM manifests m WHERE m.repo = @repo AND m.subject = k.digest) e
     )`,
  };
}
