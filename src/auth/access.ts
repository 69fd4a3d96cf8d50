import { ALL_NAMES, type NamePattern } from '../index/name-filter';
import { RepoGlob } from './globs';
import { ACTIONS, type AccessRule, type Action } from './rules';

// Who may do what to which repository. The registry consults only this for authorization;
// tokens carry what it granted at issue time.

export class AccessPolicy {
  private readonly rules: { rule: AccessRule; glob: RepoGlob }[];
  /** A Map, not an object: a rule naming `constructor` or `__proto__` must not find Object's properties. */
  private readonly groups: Map<string, readonly string[]>;

  constructor(
    /** false: no authentication configured, everyone may do everything. */
    readonly enabled: boolean,
    rules: AccessRule[],
    groups: Record<string, string[]> | Map<string, string[]>,
  ) {
    this.rules = rules.map((rule) => ({ rule, glob: new RepoGlob(rule.repository) }));
    this.groups = groups instanceof Map ? new Map(groups) : new Map(Object.entries(groups));
  }

  private matchesWho(who: string, user: string | null): boolean {
    if (who === '$anonymous') return user === null;
    if (who === '$authenticated') return user !== null;
    if (user === null) return false;
    const group = who.startsWith('@') ? who.slice(1) : who;
    return who === user || (this.groups.get(group)?.includes(user) ?? false);
  }

  /** Every action `user` (null: anonymous) may perform on `repo`. */
  actions(user: string | null, repo: string): Set<Action> {
    if (!this.enabled) return new Set(ACTIONS);
    if (this.rules.length === 0) return new Set(user === null ? [] : ACTIONS);
    const out = new Set<Action>();
    for (const { rule, glob } of this.rules) {
      if (!rule.who.some((w) => this.matchesWho(w, user))) continue;
      if (glob.forUser(user)?.test(repo)) for (const a of rule.actions) out.add(a);
    }
    return out;
  }

  can(user: string | null, repo: string, action: Action): boolean {
    return this.actions(user, repo).has(action);
  }

  /** The repositories on which `user` may perform `action`, as patterns a listing query filters with. */
  reach(user: string | null, action: Action): readonly NamePattern[] {
    if (!this.enabled) return ALL_NAMES;
    if (this.rules.length === 0) return user === null ? [] : ALL_NAMES;
    const out: NamePattern[] = [];
    for (const { rule, glob } of this.rules) {
      if (!rule.actions.includes(action) || !rule.who.some((w) => this.matchesWho(w, user))) continue;
      const m = glob.forUser(user);
      if (m) out.push(m.pattern);
    }
    return out;
  }
}
