// WWW-Authenticate challenges (RFC 7235) as registries send them:
//   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"
//   Basic realm="registry"
// Several challenges may share one header, separated by commas like their parameters.

export interface Challenge {
  /** Lower-cased: 'bearer', 'basic', ... */
  scheme: string;
  /** Parameter names lower-cased, values unquoted. */
  params: Record<string, string>;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/;

export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const headers = Array.isArray(header) ? header : [header];
  const out: Challenge[] = [];
  for (const h of headers) out.push(...parseOne(h));
  return out;
}

function parseOne(header: string): Challenge[] {
  const out: Challenge[] = [];
  let rest = header;
  let current: Challenge | undefined;
  const skip = (re: RegExp) => (rest = rest.replace(re, ''));
  while (true) {
    skip(/^[\s,]+/);
    if (rest === '') break;
    const name = TOKEN.exec(rest)?.[0];
    if (!name) break; // not a token: nothing more can be read reliably
    rest = rest.slice(name.length);
    skip(/^\s*/);
    if (rest.startsWith('=') && current) {
      rest = rest.slice(1);
      skip(/^\s*/);
      let value: string;
      if (rest.startsWith('"')) {
        const m = /^"((?:[^"\\]|\\.)*)"/.exec(rest);
        if (!m) break; // an unterminated quote
        value = m[1]!.replace(/\\(.)/g, '$1');
        rest = rest.slice(m[0].length);
      } else {
        // A token per the RFC; registries also send unquoted URLs, so anything up to a comma or space.
        value = /^[^,\s]*/.exec(rest)![0];
        rest = rest.slice(value.length);
      }
      current.params[name.toLowerCase()] = value;
    } else {
      // A token68 (Basic's credentials form) or a bare scheme: a new challenge starts.
      current = { scheme: name.toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}
