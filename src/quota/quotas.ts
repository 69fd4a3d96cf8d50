import { fixedGlob, globProblem, type NameMatcher } from '../auth/globs';
import { formatBytes, parseByteSize } from '../bytes';
import { ConfigError } from '../config/errors';
import { RegistryError } from '../errors';
import type { Tx } from '../index/database';
import type { UsageIndex } from '../index/usage-index';
import type { Digest } from '../storage/digest';

// Byte limits on groups of repositories. A quota covers every repository its glob matches, together
// (`team-a/**` is a namespace, `team-a/app` one repository), each blob counted once per repository.
// A push is refused before its bytes are read when it says its size, and always in the transaction that
// would link the blob, so concurrent pushes cannot overshoot the limit together.

export interface QuotaRule {
  repository: string;
  /** Bytes. */
  limit: number;
}

export interface QuotaStatus extends QuotaRule {
  used: number;
}

export function parseQuotas(value: unknown, where: string): QuotaRule[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) throw new ConfigError(`${where}: expected a list of {repository, limit}`);
  return value.map((q, i) => {
    const at = `${where}[${i}]`;
    if (typeof q !== 'object' || q === null || Array.isArray(q)) throw new ConfigError(`${at}: expected a mapping {repository, limit}`);
    for (const key of Object.keys(q)) {
      if (key !== 'repository' && key !== 'limit') throw new ConfigError(`unknown configuration key "${at}.${key}" (known keys here: repository, limit)`);
    }
    const { repository, limit } = q as Record<string, unknown>;
    if (typeof repository !== 'string') throw new ConfigError(`${at}.repository: expected a repository glob`);
    const problem = globProblem(repository, false);
    if (problem) throw new ConfigError(`${at}.repository: ${problem}`);
    if (limit === undefined) throw new ConfigError(`${at}.limit: required (a size such as 10GiB)`);
    try {
      return { repository, limit: parseByteSize(limit) };
    } catch (err) {
      throw new ConfigError(`${at}.limit: ${(err as Error).message}`);
    }
  });
}

export class Quotas {
  private readonly rules: (QuotaRule & { match: NameMatcher })[];

  constructor(
    rules: readonly QuotaRule[],
    private readonly usage: UsageIndex,
  ) {
    this.rules = rules.map((r) => ({ ...r, match: fixedGlob(r.repository) }));
  }

  get enabled(): boolean {
    return this.rules.length > 0;
  }

  /**
   * Refuse (DENIED) adding `bytes` to `repo` if that would exceed a quota covering it. Before an upload's
   * bytes are read this is a courtesy (the client learns early); linkBlob's check is the one that holds.
   * `tx`: the transaction it runs in, if any.
   */
  async check(repo: string, bytes: number, tx?: Tx): Promise<void> {
    const usage = tx ? tx(this.usage) : this.usage;
    for (const rule of this.rules) {
      if (!rule.match.test(repo)) continue;
      const used = await usage.bytesUsed([rule.match.pattern]);
      if (used + bytes > rule.limit) {
        throw new RegistryError('DENIED', `quota exceeded for ${rule.repository}: ${formatBytes(used)} of ${formatBytes(rule.limit)} used`, {
          detail: { quota: rule.repository, limit: rule.limit, used, requested: bytes },
        });
      }
    }
  }

  /** Run inside the transaction `tx` that links `digest` to `repo` (undefined: a courtesy check before): a blob the repository holds already costs nothing. */
  async checkLink(tx: Tx | undefined, repo: string, digest: Digest, size: number): Promise<void> {
    if (this.rules.length === 0 || (await (tx ? tx(this.usage) : this.usage).isCharged(repo, digest))) return;
    await this.check(repo, size, tx);
  }

  /** Every quota with what its repositories use now (for `du` and the admin view). */
  status(): Promise<QuotaStatus[]> {
    return Promise.all(this.rules.map(async (r) => ({ repository: r.repository, limit: r.limit, used: await this.usage.bytesUsed([r.match.pattern]) })));
  }
}
