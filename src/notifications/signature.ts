import { createHmac, timingSafeEqual } from 'node:crypto';

// The optional HMAC signature of a delivery, so a receiver can tell the registry sent it and when:
// X-Registry-Signature: t=<unix seconds>,sha256=<hex HMAC-SHA256 of "<t>.<body>">. Receivers check the
// timestamp is recent (replays) and compare in constant time; docs/notifications.md has an example.

export const SIGNATURE_HEADER = 'x-registry-signature';

export function signatureHeader(secret: Buffer, body: string, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.`).update(body).digest('hex');
  return `t=${unixSeconds},sha256=${mac}`;
}

/** Receiver side (and tests): whether `header` signs `body` with `secret`, at most `toleranceSeconds` old. */
export function verifySignature(secret: Buffer, body: string, header: string, nowSeconds: number, toleranceSeconds = 300): boolean {
  const m = /^t=(\d+),sha256=([0-9a-f]{64})$/.exec(header);
  if (!m) return false;
  const t = Number(m[1]);
  if (Math.abs(nowSeconds - t) > toleranceSeconds) return false;
  const expected = Buffer.from(signatureHeader(secret, body, t).split('sha256=')[1]!, 'hex');
  return timingSafeEqual(expected, Buffer.from(m[2]!, 'hex'));
}
