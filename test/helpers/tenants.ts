import type { DeepPartial } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import { authConfig, basic } from './auth';
import { startRegistry, type TestRegistry } from './server';

// The multi-tenant setup of the security review (issue 22): alice owns team-a/**, mallory may only
// pull there, group teamb (bob) owns team-b/**, everyone owns $user/**, everyone pulls public/**.

export const TENANT_USERS = { alice: 'alice-pw', bob: 'bob-pw', mallory: 'mallory-pw', carol: 'carol-pw' } as const;
export type Tenant = keyof typeof TENANT_USERS;

export const TENANT_RULES = [
  { repository: 'team-a/**', who: ['alice'], actions: ['pull', 'push', 'delete'] },
  { repository: 'team-a/**', who: ['mallory'], actions: ['pull'] },
  { repository: 'team-b/**', who: ['@teamb'], actions: ['pull', 'push', 'delete'] },
  { repository: '$user/**', who: ['$authenticated'], actions: ['pull', 'push', 'delete'] },
  { repository: 'public/**', who: ['$anonymous', '$authenticated'], actions: ['pull'] },
];
export const TENANT_GROUPS = { teamb: ['bob'] };

/** Basic Authorization header of a tenant. */
export const as = (user: Tenant): Record<string, string> => ({ authorization: basic(user, TENANT_USERS[user]) });

/** A registry with the tenants' htpasswd, rules and groups (token service on unless overridden). */
export async function startTenantRegistry(
  t: Parameters<typeof startRegistry>[0] & Parameters<typeof authConfig>[0],
  extra: DeepPartial<Config> = {},
): Promise<TestRegistry & { htpasswd: string }> {
  const { overrides, htpasswd } = authConfig(t, { ...TENANT_USERS }, {
    rules: TENANT_RULES as never,
    groups: TENANT_GROUPS,
    ...extra.auth,
    token: { enabled: true, ...extra.auth?.token },
  });
  const reg = await startRegistry(t, { ...extra, ...overrides });
  return Object.assign(reg, { htpasswd });
}
