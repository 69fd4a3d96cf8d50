import { escapeLike, escapeRegex, type NamePattern } from '../index/name-filter';
import { isRepositoryComponent } from '../names';

// Repository globs of access rules, compiled once: `*` stays within one path component, `**` spans
// any, `$user` is the caller's name, taken literally.

type Token = { lit: string } | '*' | '**' | '$user';

/** What a glob matches, for one caller: a test for one name, and the same set as plain data for listings. */
export interface NameMatcher {
  test(name: string): boolean;
  pattern: NamePattern;
}

/** Users whose `$user` globs stay compiled per glob; the oldest is dropped past this. */
const MAX_USERS = 1024;

function tokenize(glob: string): Token[] {
  const out: Token[] = [];
  for (let i = 0; i < glob.length; i++) {
    if (glob.startsWith('**', i)) {
      out.push('**');
      i++;
    } else if (glob[i] === '*') out.push('*');
    else if (glob.startsWith('$user', i)) {
      out.push('$user');
      i += 4;
    } else out.push({ lit: glob[i]! });
  }
  return out;
}

function compile(tokens: Token[], user: string): NameMatcher {
  let prefix = '';
  let i = 0;
  const lit = (t: Token) => (t === '$user' ? user : typeof t === 'object' ? t.lit : undefined);
  for (; i < tokens.length && lit(tokens[i]!) !== undefined; i++) prefix += lit(tokens[i]!);
  if (i === tokens.length) return { test: (name) => name === prefix, pattern: { exact: prefix } };
  if (i === tokens.length - 1 && tokens[i] === '**') return { test: (name) => name.startsWith(prefix), pattern: { prefix } };
  const regex = tokens.map((t) => (t === '**' ? '.*' : t === '*' ? '[^/]*' : escapeRegex(lit(t)!))).join('');
  const like = tokens.map((t) => (t === '**' || t === '*' ? '%' : escapeLike(lit(t)!))).join('').replace(/%+/g, '%');
  const re = new RegExp(`^(?:${regex})$`);
  return { test: (name) => re.test(name), pattern: { prefix, regex, like } };
}

export class RepoGlob {
  private readonly tokens: Token[];
  private readonly fixed?: NameMatcher;
  private readonly perUser = new Map<string, NameMatcher | undefined>();

  constructor(readonly source: string) {
    this.tokens = tokenize(source);
    if (!this.tokens.includes('$user')) this.fixed = compile(this.tokens, '');
  }

  /**
   * The matcher for `user` (null: anonymous). Undefined when the glob names `$user` and there is no
   * caller, or the caller's name cannot be a repository path component (it then matches nothing).
   */
  forUser(user: string | null): NameMatcher | undefined {
    if (this.fixed) return this.fixed;
    if (user === null) return undefined;
    if (this.perUser.has(user)) return this.perUser.get(user);
    const m = isRepositoryComponent(user) ? compile(this.tokens, user) : undefined;
    if (this.perUser.size >= MAX_USERS) this.perUser.delete(this.perUser.keys().next().value!);
    this.perUser.set(user, m);
    return m;
  }
}

/**
 * Why `source` cannot be a repository glob, or undefined if it can: only the characters of repository
 * names, `*`, `**` (and `$user` where a caller is known), no empty path component.
 */
export function globProblem(source: string, allowUser: boolean): string | undefined {
  if (source === '') return 'an empty glob matches nothing';
  const rest = allowUser ? source.replaceAll('$user', 'u') : source;
  const bad = /[^a-z0-9._/*-]/.exec(rest);
  if (bad) return `"${bad[0]}" cannot appear in a repository glob${!allowUser && bad[0] === '$' ? ' ($user has no meaning here)' : ''}`;
  if (rest.includes('***')) return '"***" is not a glob: use * (one path component) or ** (any)';
  if (rest.startsWith('/') || rest.endsWith('/') || rest.includes('//')) return 'a repository glob has no empty path component';
  return undefined;
}

/** The matcher of a glob that names no caller (quotas, retention, `du`; globProblem refuses `$user` there). */
export function fixedGlob(source: string): NameMatcher {
  const matcher = new RepoGlob(source).forUser(null);
  if (!matcher) throw new Error(`repository glob ${JSON.stringify(source)} depends on the caller ($user)`);
  return matcher;
}
