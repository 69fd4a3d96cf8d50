'use strict';
// A throw-away PostgreSQL cluster for benchmarks: initdb in a temp dir, a postmaster on 127.0.0.1 and a
// free port, one password user that owns the databases the benchmark creates. As root every program runs
// as the `postgres` user (runuser: PostgreSQL refuses root). Unlike the test harness (test/helpers/postgres.ts)
// it is durable by default, fsync and synchronous_commit on, so it is compared fairly with SQLite's
// fsynced commits. Stopped by its PID.

const { execFileSync, spawnSync } = require('node:child_process');
const { randomBytes } = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { freePort } = require('./processes');
const { processTreeCpuSeconds } = require('./procfs');
const { sleep } = require('./basics');

// pg_ctl detaches the postmaster from this process: an interrupted benchmark stops it here.
const live = new Set();
process.on('exit', () => {
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGQUIT');
    } catch {
      // already gone
    }
  }
});
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => process.exit(130));

/** The newest installed server's bin directory (Debian: /usr/lib/postgresql/<major>/bin), or PG_BIN. */
function postgresBinDir() {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  const majors = fs.existsSync(root) ? fs.readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  if (!majors.length) throw new Error('PostgreSQL not found: apt-get install -y --no-install-recommends postgresql');
  return path.join(root, majors[0], 'bin');
}

/**
 * Start a cluster. `durable`: fsync and synchronous_commit on (PostgreSQL's defaults, what a deployment
 * runs); `settings`: more postgresql.conf lines (e.g. shared_preload_libraries for a profile).
 */
async function startCluster({ durable = true, settings = [], maxConnections = 100 } = {}) {
  const bin = postgresBinDir();
  const asRoot = process.getuid?.() === 0;
  const run = (program, args) => {
    const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', path.join(bin, program), ...args]] : [path.join(bin, program), args];
    const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) throw new Error(`${program} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}`);
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-pg-'));
  const data = path.join(dir, 'data');
  if (asRoot) {
    const id = (flag) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }));
    fs.chownSync(dir, id('-u'), id('-g'));
  }
  run('initdb', ['-D', data, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', '--no-sync', '-E', 'UTF8', '--locale=C', '--no-instructions']);
  const port = await freePort();
  const conf = [
    "listen_addresses = '127.0.0.1'",
    `port = ${port}`,
    `unix_socket_directories = '${dir}'`,
    `fsync = ${durable ? 'on' : 'off'}`,
    `synchronous_commit = ${durable ? 'on' : 'off'}`,
    `full_page_writes = ${durable ? 'on' : 'off'}`,
    `max_connections = ${maxConnections}`,
    "log_min_messages = 'warning'",
    ...settings,
  ];
  fs.appendFileSync(path.join(data, 'postgresql.conf'), conf.join('\n') + '\n');
  run('pg_ctl', ['start', '-w', '-t', '60', '-D', data, '-l', path.join(dir, 'server.log')]);
  const pid = Number(fs.readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  live.add(pid);

  const { Client } = require('pg');
  const admin = async (sql, database = 'postgres') => {
    const client = new Client({ host: dir, port, user: 'postgres', database });
    await client.connect();
    try {
      return await client.query(sql);
    } finally {
      await client.end();
    }
  };
  const user = 'registry';
  const password = randomBytes(12).toString('hex');
  await admin(`CREATE ROLE ${user} LOGIN PASSWORD '${password}'`);
  let databases = 0;
  const version = (await admin('SHOW server_version')).rows[0].server_version;

  return {
    pid,
    dir,
    port,
    version,
    durable,
    admin,
    /** A new empty database owned by the registry user: its URL. */
    async createDatabase() {
      const name = `bench${++databases}`;
      await admin(`CREATE DATABASE ${name} OWNER ${user}`);
      return { name, url: `postgres://${user}:${password}@127.0.0.1:${port}/${name}` };
    },
    /** CPU seconds of the postmaster and all its processes (backends, walwriter, checkpointer...), ended ones included. */
    cpuSeconds: () => processTreeCpuSeconds(pid),
    /** SIGQUIT (immediate shutdown: the data is thrown away), SIGKILL if it lingers; then the temp dir goes. */
    async stop() {
      const alive = () => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      };
      if (alive()) process.kill(pid, 'SIGQUIT');
      for (let waited = 0; alive(); waited += 20) {
        if (waited === 5000) process.kill(pid, 'SIGKILL');
        await sleep(20);
      }
      live.delete(pid);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

module.exports = { startCluster, postgresBinDir };
