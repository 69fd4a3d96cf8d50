import { buildApp } from './app';
import { ConfigError, loadConfig, splitAddr } from './config/load';
import { startIdleGc } from './idle-gc';
import { PostgresStartError } from './index/postgres/connect';
import { IndexMissingError } from './refs/startup-check';

// Process entry: load config, serve, and shut down gracefully on SIGTERM/SIGINT.

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`registry: configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const app = await buildApp(config);
  const { host, port } = splitAddr(config.http.addr);
  await app.listen({ host, port });
  const stopIdleGc = startIdleGc(app.server, app.log, () => app.registry.blobs.driver.releaseIdleMemory?.() ?? 0);

  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    stopIdleGc();
    app.log.info({ signal }, 'shutting down: no new connections, waiting for in-flight requests');
    const force = setTimeout(() => {
      app.log.warn('in-flight requests did not finish in time; exiting');
      process.exit(1);
    }, config.http.shutdownTimeout * 1000);
    force.unref();
    app.close().then(
      () => {
        app.log.info('stopped');
        process.exit(0);
      },
      (err) => {
        app.log.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // A file size limit (ulimit -f) must fail the write (EFBIG: 507 STORAGE_FULL), not end the process. Node
  // ignores SIGXFSZ, but a preloaded module's exit hooks may re-raise it (signal-exit does, under tap) unless
  // someone else listens.
  process.on('SIGXFSZ', () => undefined);
}

main().catch((err) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`registry: configuration error: ${err.message}\n`);
    process.exit(2);
  }
  if (err instanceof IndexMissingError || err instanceof PostgresStartError) {
    process.stderr.write(`registry: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`registry: failed to start: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
