import { randomBytes } from 'node:crypto';

// v1 index tokens (v1-protocol.md 1.6, 3.11). Without authentication configured a token only
// tells Docker 1.x clients which repository and access they were given; the auth issue makes
// them signed and checked.

export type V1Access = 'read' | 'write' | 'delete';

/** The X-Docker-Token value in Docker Hub's format (no "Token " prefix; clients add it). */
export function issueV1Token(repo: string, access: V1Access): string {
  return `signature=${randomBytes(16).toString('hex')},repository="${repo}",access=${access}`;
}
