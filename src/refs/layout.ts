import { randomBytes } from 'node:crypto';
import type { StorageDriver } from '../storage/driver';

// Where the reference records live in storage (records: refs/<kind>/<name>, see StorageDriver.putRecord):
//   refs/journal/<first>-<last>-<id>.jsonl   a closed segment: records first..last, one JSON line each
//   refs/journal/<first>-open-<id>.jsonl     a segment a process appends to (local storage); its content says its last
//   refs/snapshots/<seq>-<id>-<part>.jsonl   a snapshot's parts: the whole index as records, standing for 1..seq
//   refs/snapshots/<seq>-<id>.done           written after its parts: {"seq", "parts", "records"}
// Sequence numbers and parts are zero-padded, so names sort in order; ids keep writers apart.

export const JOURNAL_PREFIX = 'refs/journal/';
export const SNAPSHOT_PREFIX = 'refs/snapshots/';

const pad = (n: number, digits = 16) => String(n).padStart(digits, '0');
const rand = () => randomBytes(4).toString('hex');

export const segmentKey = (first: number, last: number) => `${JOURNAL_PREFIX}${pad(first)}-${pad(last)}-${rand()}.jsonl`;
/** A segment still being appended to (or left so by a process that stopped without closing it): its last record is in it. */
export const openSegmentKey = (first: number) => `${JOURNAL_PREFIX}${pad(first)}-open-${rand()}.jsonl`;

/**
 * First and last sequence numbers of a segment key (last: undefined for an open segment, whose content says),
 * or undefined if the key is no segment.
 */
export function segmentRange(key: string): { first: number; last?: number } | undefined {
  const m = /^refs\/journal\/(\d{16})-(\d{16}|open)-[0-9a-f]{8}\.jsonl$/.exec(key);
  if (!m) return undefined;
  return { first: Number(m[1]), last: m[2] === 'open' ? undefined : Number(m[2]) };
}

/** The highest sequence number in a segment's content (its lines start with {"s":<n>,). */
export function lastSequenceIn(data: Buffer): number {
  let last = 0;
  for (const m of data.toString('utf8').matchAll(/^\{"s":(\d+),/gm)) last = Math.max(last, Number(m[1]));
  return last;
}

export const snapshotId = rand;
export const snapshotPartKey = (seq: number, id: string, part: number) => `${SNAPSHOT_PREFIX}${pad(seq)}-${id}-${pad(part, 6)}.jsonl`;
export const snapshotDoneKey = (seq: number, id: string) => `${SNAPSHOT_PREFIX}${pad(seq)}-${id}.done`;

/** What a snapshot key names: its sequence number, id, and part number (undefined for the .done marker). */
export function snapshotKey(key: string): { seq: number; id: string; part?: number } | undefined {
  const m = /^refs\/snapshots\/(\d{16})-([0-9a-f]{8})(?:-(\d{6})\.jsonl|\.done)$/.exec(key);
  if (!m) return undefined;
  return { seq: Number(m[1]), id: m[2]!, part: m[3] === undefined ? undefined : Number(m[3]) };
}

/** The highest sequence number storage holds, in a segment or standing behind a snapshot (0: none). */
export async function highestStoredSeq(driver: StorageDriver): Promise<number> {
  let highest = 0;
  for await (const { key } of driver.listRecords(JOURNAL_PREFIX)) {
    const range = segmentRange(key);
    if (!range) continue;
    highest = Math.max(highest, range.last ?? lastSequenceIn((await driver.getRecord(key)) ?? Buffer.alloc(0)));
  }
  for await (const { key } of driver.listRecords(SNAPSHOT_PREFIX)) {
    const k = snapshotKey(key);
    if (k && k.part === undefined) highest = Math.max(highest, k.seq);
  }
  return highest;
}
