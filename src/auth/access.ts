import { ACTIONS, type AccessRule, type Action } from './rules';

// Who may do what to which repository. The registry consults only this for authorization;
// tokens carry what it granted at issue time.

function escapeRegex(s: string): string {
  return s.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}

/** Compile a repository glob: `**` spans path components, `*` stays within one; `$user` is the caller. */
function compile(glob: string, user: string | null): RegExp | undefined {
  if (glob.includes('$user') && !user) return undefined;
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    if (glob.startsWith('**', i)) {
      re += '.*';
      i++;
    } else if (glob[i] === '*') re += '[^/]*';
    else if (glob.startsWith('$user', i)) {
      re += escapeRegex(user!);
      i += 4;
    } else re += escapeRegex(glob[i]!);
  }
  return new RegExp(`^${re}$`);
}

export class AccessPolicy {
  constructor(
    /** false: no authentication configured, everyone may do everything. */
    readonly enabled: boolean,
    private readonly rules: AccessRule[],
    private readonly groups: Record<string, string[]>,
  ) {}

  private matchesWho(who: string, user: string | null): boolean {
    if (who === '$anonymous') return user === null;
    if (who === '$authenticated') return user !== null;
    if (user === null) return false;
    const group = who.startsWith('@') ? who.slice(1) : who;
    return who === user || (this.groups[group]?.includes(user) ?? false);
  }

  /** Every action `user` (null: anonymous) may perform on `repo`. */
  actions(user: string | null, repo: string): Set<Action> {
    if (!this.enabled) return new Set(ACTIONS);
    if (this.rules.length === 0) return new Set(user === null ? [] : ACTIONS);
    const out = new Set<Action>();
    for (const rule of this.rules) {
      if (!rule.who.some((w) => this.matchesWho(w, user))) continue;
      if (compile(rule.repository, user)?.test(repo)) for (const a of rule.actions) out.add(a);
    }
    return out;
  }

  can(user: string | null, repo: string, action: Action): boolean {
    return this.actions(user, repo).has(action);
  }
}
