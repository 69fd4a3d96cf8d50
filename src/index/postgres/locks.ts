import { createHash } from 'node:crypto';
import type pg from 'pg';

// Every PostgreSQL advisory lock the registry takes, in one place so that no two share a key. The keys are
// arbitrary and fixed: "tsreg" in ASCII, then a number.

/** Every replica's migration. */
export const MIGRATION_LOCK = 0x7473726567_01n;
/** Every write transaction (postgres/database.ts). */
export const WRITE_LOCK = 0x7473726567_02n;
/** Leadership of the background work, held by one replica's session (postgres/leader.ts). */
export const LEADER_LOCK = 0x7473726567_03n;

/**
 * The upload `id`'s, held while a request writes to it (postgres/upload-locks.ts): 62 bits of the id's
 * sha256 with bit 62 set, so that it never equals a fixed key above.
 */
export function uploadLockKey(id: string): bigint {
  const hash = createHash('sha256').update(id).digest().readBigUInt64BE(0);
  return (1n << 62n) | BigInt.asUintN(62, hash);
}

/** Whether `client`'s session holds the session-level advisory lock `key` now (asked of the server). */
export async function sessionHolds(client: pg.Client, key: bigint): Promise<boolean> {
  const r = await client.query(
    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND pid = pg_backend_pid() AND ((classid::bigint << 32) | objid::bigint) = $1",
    [key.toString()],
  );
  return r.rowCount === 1;
}
