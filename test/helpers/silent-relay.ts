import net from 'node:net';

// A TCP relay to a server that can go silent, as a broken network path would: nothing is closed or reset,
// and TCP keepalives (answered by the relay's kernel) cannot tell.

export interface SilentRelay {
  /** `url` with its port replaced by the relay's. */
  url: string;
  /** Stop (true) or resume (false) forwarding, both ways. */
  silence(silent: boolean): void;
}

/** A relay to the host:port of `url` (a postgres:// URL), closed at `t`'s teardown. */
export async function silentRelay(t: { teardown(fn: () => void): void }, url: string): Promise<SilentRelay> {
  const target = new URL(url);
  let silent = false;
  const sockets = new Set<net.Socket>();
  const relay = net.createServer((down) => {
    const up = net.connect(Number(target.port), target.hostname);
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('error', () => undefined);
    }
    down.on('data', (d) => void (silent || up.write(d)));
    up.on('data', (d) => void (silent || down.write(d)));
    down.on('close', () => up.destroy());
    up.on('close', () => down.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    relay.close();
  });
  const via = new URL(target);
  via.port = String((relay.address() as net.AddressInfo).port);
  return { url: via.toString(), silence: (s) => void (silent = s) };
}
