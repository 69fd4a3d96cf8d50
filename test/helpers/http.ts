// One HTTP call with everything a test asserts on: status, headers, raw bytes, parsed JSON.

export interface HttpResult {
  status: number;
  headers: Headers;
  buf: Buffer;
  json: any;
}

export async function http(
  base: string,
  method: string,
  path: string,
  body?: RequestInit['body'],
  headers: Record<string, string> = {},
): Promise<HttpResult> {
  const res = await fetch(base + path, { method, body, headers, redirect: 'manual' });
  const buf = Buffer.from(await res.arrayBuffer());
  let json: unknown;
  try {
    json = JSON.parse(buf.toString());
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, buf, json };
}
