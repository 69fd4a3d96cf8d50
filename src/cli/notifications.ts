import { NotificationIndex, type EndpointBacklog } from '../index/notification-index';
import type { Command } from './dispatch';
import { formatDuration } from './format';
import { withIndex, type IndexDeps } from './index-access';
import type { CliIo } from './io';

// `registry notifications status [--json]`: what each webhook endpoint is owed, from the outbox in the index
// (safe while the server runs). Exit status: 0 every endpoint delivers, 3 some undelivered event has failed.

const USAGE = 'usage: npm run registry -- notifications status [--json]\n';
/** Some endpoint has events that failed at least once and are still waiting: scripts alert on it. */
export const EXIT_FAILING = 3;

export const notificationsHelp: Command['help'] = [
  ['notifications status [--json]', 'per webhook endpoint: events pending, failing, oldest age, last error (exit 3 if any is failing)'],
];

type State = 'ok' | 'failing' | 'disabled' | 'not configured';

interface Row extends Omit<EndpointBacklog, 'oldest'> {
  state: State;
  /** Seconds since the oldest pending event was made, or null. */
  oldestAgeSeconds: number | null;
}

export async function notificationsCommand(args: string[], io: CliIo, deps: IndexDeps & { now?: () => number } = {}): Promise<number> {
  const [sub, ...rest] = args;
  const json = rest.length === 1 && rest[0] === '--json';
  if (sub !== 'status' || (rest.length > 0 && !json)) {
    io.stderr.write(`registry notifications: ${sub === undefined ? 'missing subcommand' : `unexpected argument ${JSON.stringify(sub !== 'status' ? sub : rest.find((a) => a !== '--json'))}`}\n${USAGE}`);
    return 2;
  }
  const now = (deps.now ?? Date.now)();
  const rows = await withIndex(deps, async (db, config) => {
    const backlog = new Map((await new NotificationIndex(db).backlog()).map((b) => [b.endpoint, b]));
    const out: Row[] = config.notifications.endpoints.map((e) => row(e.name, backlog.get(e.name), e.enabled ? undefined : 'disabled', now));
    const configured = new Set(config.notifications.endpoints.map((e) => e.name));
    for (const [name, b] of backlog) if (!configured.has(name)) out.push(row(name, b, 'not configured', now));
    return out;
  });
  if (json) io.stdout.write(JSON.stringify({ endpoints: rows }, null, 2) + '\n');
  else if (rows.length === 0) io.stdout.write('no notification endpoints configured (notifications.endpoints) and none owed events\n');
  else print(io, rows);
  return rows.some((r) => r.state === 'failing') ? EXIT_FAILING : 0;
}

function row(endpoint: string, b: EndpointBacklog | undefined, fixed: State | undefined, now: number): Row {
  const failing = b?.failing ?? 0;
  return {
    endpoint,
    state: fixed ?? (failing > 0 ? 'failing' : 'ok'),
    pending: b?.pending ?? 0,
    failing,
    oldestAgeSeconds: b?.oldest == null ? null : Math.max(0, Math.round((now - b.oldest) / 1000)),
    lastError: b?.lastError ?? null,
  };
}

function print(io: CliIo, rows: Row[]): void {
  const table = [
    ['ENDPOINT', 'STATE', 'PENDING', 'FAILING', 'OLDEST', 'LAST ERROR'],
    ...rows.map((r) => [r.endpoint, r.state, String(r.pending), String(r.failing), r.oldestAgeSeconds === null ? '-' : formatDuration(r.oldestAgeSeconds * 1000), r.lastError ?? '-']),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((cells) => cells[i]!.length)));
  for (const cells of table) {
    io.stdout.write(cells.map((c, i) => (i === cells.length - 1 ? c : i >= 2 && i <= 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ') + '\n');
  }
}
