import { globProblem } from '../auth/globs';
import type { Digest } from '../storage/digest';
import { ConfigError } from '../config/errors';

// Retention policies as written in config.yml (retention.policies), and the decision for one repository's
// tags. Every rule keeps; a tag goes when no rule keeps it. The first policy whose glob matches a
// repository is the one applied to it (later ones are not consulted), so a list reads top-down.

export interface RetentionPolicy {
  /** Repository glob: `*` stays within one path component, `**` spans any. */
  repository: string;
  /** Keep the newest N tags by push time. */
  keepLast?: number;
  /** Keep tags matching one of these patterns (`*`: any run of characters), e.g. `v*`, `latest`. */
  keepTags?: string[];
  /** Keep tags pushed within this many days: only older ones may go. */
  deleteOlderThan?: number;
  /** Keep tags pulled (by tag, or their manifest by digest) within this many days. */
  keepPulledWithin?: number;
}

const KEYS = ['repository', 'keepLast', 'keepTags', 'deleteOlderThan', 'keepPulledWithin'];
const DAY_MS = 86_400_000;

export function parsePolicies(value: unknown, where: string): RetentionPolicy[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) throw new ConfigError(`${where}: expected a list of policies`);
  return value.map((raw, i) => {
    const at = `${where}[${i}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${at}: expected a mapping`);
    for (const key of Object.keys(raw)) {
      if (!KEYS.includes(key)) throw new ConfigError(`unknown configuration key "${at}.${key}" (known keys here: ${KEYS.join(', ')})`);
    }
    const r = raw as Record<string, unknown>;
    if (typeof r.repository !== 'string') throw new ConfigError(`${at}.repository: expected a repository glob`);
    const problem = globProblem(r.repository, false);
    if (problem) throw new ConfigError(`${at}.repository: ${problem}`);
    const policy: RetentionPolicy = { repository: r.repository };
    if (r.keepLast !== undefined) policy.keepLast = count(r.keepLast, `${at}.keepLast`);
    if (r.deleteOlderThan !== undefined) policy.deleteOlderThan = days(r.deleteOlderThan, `${at}.deleteOlderThan`);
    if (r.keepPulledWithin !== undefined) policy.keepPulledWithin = days(r.keepPulledWithin, `${at}.keepPulledWithin`);
    if (r.keepTags !== undefined) {
      if (!Array.isArray(r.keepTags) || !r.keepTags.every((p) => typeof p === 'string' && /^[A-Za-z0-9_.*-]{1,128}$/.test(p))) {
        throw new ConfigError(`${at}.keepTags: expected a list of tag patterns (letters, digits, _ . - and * for any run of characters)`);
      }
      policy.keepTags = r.keepTags as string[];
    }
    // A policy without rules would delete every tag it reaches: surely not what was meant.
    if (Object.keys(policy).length === 1) throw new ConfigError(`${at}: no rule (${KEYS.slice(1).join(', ')}): it would delete every tag`);
    return policy;
  });
}

function count(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new ConfigError(`${where}: expected a whole number, at least 0 (got ${JSON.stringify(v)})`);
  return v;
}

function days(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new ConfigError(`${where}: expected a number of days, at least 0 (got ${JSON.stringify(v)})`);
  return v;
}

const tagPattern = (p: string) => new RegExp(`^${p.replace(/[.]/g, '\\.').replace(/\*/g, '.*')}$`);

export interface TagState {
  tag: string;
  digest: Digest;
  /** When the tag was last pushed (set or moved), ms. */
  pushedAt: number;
  /** The last pull of the tag or of its manifest by digest, ms (null: never seen). */
  pulledAt: number | null;
}

export interface TagVerdict extends TagState {
  keep: boolean;
  /** Why it stays (the first rule that keeps it), or why it goes (every rule it fails). */
  reason: string;
}

/** The verdict for each tag of one repository under `policy` at time `now`, newest first. */
export function judgeTags(policy: RetentionPolicy, tags: readonly TagState[], now: number): TagVerdict[] {
  const patterns = (policy.keepTags ?? []).map((p) => ({ p, re: tagPattern(p) }));
  const newest = [...tags].sort((a, b) => b.pushedAt - a.pushedAt || (a.tag < b.tag ? 1 : a.tag > b.tag ? -1 : 0));
  return newest.map((t, rank) => {
    const keeps: string[] = [];
    const fails: string[] = [];
    if (policy.keepLast !== undefined) (rank < policy.keepLast ? keeps : fails).push(`${rank < policy.keepLast ? 'among' : 'not among'} the newest ${policy.keepLast}`);
    const match = patterns.find(({ re }) => re.test(t.tag));
    if (patterns.length > 0) (match ? keeps : fails).push(match ? `matches ${match.p}` : `matches none of ${patterns.map(({ p }) => p).join(', ')}`);
    if (policy.keepPulledWithin !== undefined) {
      const recent = t.pulledAt !== null && now - t.pulledAt < policy.keepPulledWithin * DAY_MS;
      (recent ? keeps : fails).push(`${recent ? '' : 'not '}pulled within ${policy.keepPulledWithin} days`);
    }
    if (policy.deleteOlderThan !== undefined) {
      const young = now - t.pushedAt < policy.deleteOlderThan * DAY_MS;
      (young ? keeps : fails).push(young ? `pushed within ${policy.deleteOlderThan} days` : `pushed more than ${policy.deleteOlderThan} days ago`);
    }
    return keeps.length > 0 ? { ...t, keep: true, reason: keeps[0]! } : { ...t, keep: false, reason: fails.join(', ') || 'no rule keeps it' };
  });
}
