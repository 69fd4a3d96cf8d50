'use strict';
// A TCP relay on 127.0.0.1 that passes requests through untouched and answers at most `mibps` MiB/s per
// connection: an upstream as far away as a real one (Docker Hub over a company's link) rather than one
// serving its page cache over loopback.

const net = require('node:net');

const MiB = 1024 * 1024;

/** Start a relay to `target` (host:port); resolves with { host, close() }. */
function startThrottle(target, mibps) {
  const [targetHost, targetPort] = target.split(':');
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(targetPort), targetHost);
    sockets.add(client).add(upstream);
    let started = Date.now();
    let last = started;
    let sent = 0;
    client.pipe(upstream);
    upstream.on('data', (chunk) => {
      // A kept-alive connection idle in between starts its clock again: no burst from saved-up time.
      if (Date.now() - last > 200) {
        started = Date.now();
        sent = 0;
      }
      last = Date.now();
      sent += chunk.length;
      client.write(chunk);
      // Ahead of the allowed rate: stop reading until the clock catches up with the bytes sent.
      const aheadMs = (sent / (mibps * MiB)) * 1000 - (Date.now() - started);
      if (aheadMs > 1) {
        upstream.pause();
        setTimeout(() => upstream.resume(), aheadMs);
      }
    });
    upstream.on('end', () => client.end());
    const done = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', done).on('close', done);
    upstream.on('error', done).on('close', done);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      resolve({
        host: `127.0.0.1:${server.address().port}`,
        close: () => {
          for (const s of sockets) s.destroy();
          return new Promise((r) => server.close(() => r()));
        },
      });
    });
  });
}

module.exports = { startThrottle };
