import { writeFileSync } from 'node:fs';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import type { DeepPartial } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import { tempDir } from './server';

/** Basic Authorization header value. */
export const basic = (user: string, password: string) => 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');

/** Write an htpasswd file (bcrypt, $2y$ as htpasswd -B writes) and return auth config overrides. */
export function authConfig(
  t: Parameters<typeof tempDir>[0],
  users: Record<string, string>,
  auth: DeepPartial<Config['auth']> = {},
): { overrides: DeepPartial<Config>; htpasswd: string; dir: string } {
  const dir = tempDir(t, 'registry-auth-');
  const htpasswd = path.join(dir, 'htpasswd');
  writeFileSync(
    htpasswd,
    Object.entries(users)
      .map(([u, p]) => `${u}:${bcrypt.hashSync(p, 4).replace(/^\$2b\$/, '$2y$')}\n`)
      .join(''),
  );
  return {
    htpasswd,
    dir,
    overrides: {
      auth: {
        ...auth,
        htpasswd: { path: htpasswd, realm: 'test-realm', ...auth.htpasswd },
        token: { secretFile: path.join(dir, 'token.key'), ...auth.token },
      },
    },
  };
}
