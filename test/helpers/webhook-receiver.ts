import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { Socket } from 'node:net';

// A webhook receiver for notification tests, on 127.0.0.1: records every delivery (headers, raw body, events)
// and answers as told: 200, an error status, bytes that are no HTTP at all, or nothing (hang). It can be taken
// down and brought back on the same port.

/** A fixed answer, or one chosen per delivery from its events. */
export type ReceiverMode = { status: number } | 'garbage' | 'hang' | ((events: ReceivedEvent[]) => { status: number } | 'garbage' | 'hang');

export interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
  events: ReceivedEvent[];
  /** How the receiver answered this one. */
  answered: string;
}

export interface ReceivedEvent {
  id: string;
  timestamp: string;
  action: string;
  target: { mediaType?: string; digest?: string; size?: number; length?: number; repository: string; url?: string; tag?: string; fromRepository?: string; imageId?: string };
  request?: { id: string; addr: string; host: string; method: string; useragent: string };
  actor: { name?: string };
  source: { addr: string; instanceID: string };
}

export interface Receiver {
  url: string;
  port: number;
  deliveries: Delivery[];
  /** Events of the deliveries answered 2xx, in arrival order. */
  accepted(): ReceivedEvent[];
  mode: ReceiverMode;
  down(): Promise<void>;
  up(): Promise<void>;
  /** Resolves once `pred` holds (checked on every delivery), or rejects after `ms`. */
  waitFor(pred: () => boolean, ms?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startReceiver(t: { teardown(fn: () => unknown): void }, port = 0): Promise<Receiver> {
  let server: Server | undefined;
  const sockets = new Set<Socket>();
  const waiters = new Set<() => void>();
  const r: Receiver = {
    url: '',
    port,
    deliveries: [],
    mode: { status: 200 },
    accepted: () => r.deliveries.filter((d) => /^2/.test(d.answered)).flatMap((d) => d.events),
    down: async () => {
      const s = server;
      server = undefined;
      if (!s) return;
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
    up: async () => {
      const s = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          let events: ReceivedEvent[] = [];
          try {
            events = (JSON.parse(body) as { events: ReceivedEvent[] }).events;
          } catch {
            /* recorded as is */
          }
          const mode = typeof r.mode === 'function' ? r.mode(events) : r.mode;
          const answered = mode === 'hang' ? 'hang' : mode === 'garbage' ? 'garbage' : String(mode.status);
          r.deliveries.push({ headers: req.headers, body, events, answered });
          for (const w of waiters) w();
          if (mode === 'hang') return;
          if (mode === 'garbage') {
            req.socket.end('this is not HTTP at all\r\n\r\n');
            return;
          }
          res.writeHead(mode.status, { 'content-type': 'text/plain' }).end('ok');
        });
      });
      s.on('connection', (socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
      });
      await new Promise<void>((resolve) => s.listen(r.port, '127.0.0.1', () => resolve()));
      r.port = (s.address() as { port: number }).port;
      r.url = `http://127.0.0.1:${r.port}/hook`;
      server = s;
    },
    waitFor: (pred, ms = 20_000) =>
      new Promise<void>((resolve, reject) => {
        if (pred()) return resolve();
        const check = () => {
          if (!pred()) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`receiver: condition not met within ${ms} ms (${r.deliveries.length} deliveries)`));
        }, ms);
        waiters.add(check);
      }),
    close: () => r.down(),
  };
  await r.up();
  t.teardown(() => r.close());
  return r;
}
