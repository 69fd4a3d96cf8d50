// Sets of repository names as plain data, so that listings filter in the query (LIMIT applies after
// filtering) and any index backend can evaluate them: SQLite with a registered REGEXP, PostgreSQL with ~.

/** Names a listing may return: a name matches if it is `exact`, or starts with `prefix` and matches `regex`. */
export type NamePattern =
  | { exact: string }
  /**
   * `regex`: what the whole name must match (no anchors), in the syntax ECMAScript and POSIX ARE share;
   * absent: the prefix decides. `like`: a LIKE pattern (escape `\`) every such name matches too,
   * tested first because it is cheap.
   */
  | { prefix: string; regex?: string; like?: string };

/** Every name. */
export const ALL_NAMES: readonly NamePattern[] = [{ prefix: '' }];

/** A contiguous range of names [from, to) (`to` null: no end) and the regex a name there must match (null: none). */
export interface NameRange {
  from: string;
  to: string | null;
  regex: string | null;
  /** A LIKE pattern (escape `\`) every name the regex accepts also matches (null: none). */
  like: string | null;
}

/** The smallest string after every string that starts with `prefix` (null: there is none). */
function after(prefix: string): string | null {
  let p = prefix;
  while (p.endsWith('\uffff')) p = p.slice(0, -1);
  if (p === '') return null;
  return p.slice(0, -1) + String.fromCharCode(p.charCodeAt(p.length - 1) + 1);
}

export function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, '\\$&');
}

interface Span {
  from: string;
  to: string | null;
  /** Unanchored regex body of the names this pattern matches inside the span. */
  body: string;
  /** The pattern takes every name of its span. */
  whole: boolean;
  like?: string;
}

function span(p: NamePattern): Span {
  // An exact name is the range [name, name + "\x01"): only name + "\0..." sorts between them, and no repository
  // name holds a control character. Not "\0" as the end: a PostgreSQL text parameter cannot hold NUL.
  if ('exact' in p) return { from: p.exact, to: p.exact + '\x01', body: escapeRegex(p.exact), whole: true };
  const body = p.regex !== undefined ? `(?:${p.regex})` : escapeRegex(p.prefix) + '.*';
  return { from: p.prefix, to: after(p.prefix), body, whole: p.regex === undefined, like: p.like };
}

/** a < b, where null is past every string. */
const before = (a: string | null, b: string | null) => a !== null && (b === null || a < b);

/**
 * Sorted, disjoint ranges covering exactly the names the patterns match, each with the one regex
 * (an alternation) its names must match. Ranges of prefixes nest or are disjoint, so a listing
 * reads each range once, in order, with an index range scan.
 */
export function nameRanges(patterns: readonly NamePattern[]): NameRange[] {
  // By start, then the widest first, so each group starts with the span that contains the others.
  const spans = patterns.map(span).sort((a, b) => (a.from !== b.from ? (a.from < b.from ? -1 : 1) : before(a.to, b.to) ? 1 : before(b.to, a.to) ? -1 : 0));
  const out: NameRange[] = [];
  let group: Span[] = [];
  let end: string | null = '';
  const flush = () => {
    if (group.length === 0) return;
    const from = group[0]!.from;
    const whole = group.some((s) => s.whole && s.from === from && s.to === end);
    const bodies = [...new Set(group.map((s) => s.body))];
    // A LIKE pre-filter serves a range of one pattern (an alternation of LIKEs would not be one parameter).
    const like = !whole && bodies.length === 1 ? (group[0]!.like ?? null) : null;
    out.push({ from, to: end, regex: whole ? null : `^(?:${bodies.join('|')})$`, like });
    group = [];
  };
  for (const s of spans) {
    if (group.length > 0 && !before(s.from, end)) flush();
    if (group.length === 0 || before(end, s.to)) end = s.to;
    group.push(s);
  }
  flush();
  return out;
}

/** Where a page of names after `last` starts in a range (the name `last` itself excluded); undefined: the range is before it. */
export function rangeStart(range: NameRange, last: string): string | undefined {
  if (range.to !== null && range.to <= last) return undefined; // the whole range is before the page
  return last >= range.from ? last : range.from;
}
