'use strict';
// nginx as a round-robin load balancer in front of registry replicas, for benchmarks: a minimal config in
// a temp dir (its own pid, logs and temp paths), run in the foreground with -p/-c on 127.0.0.1, kept-alive
// connections to the replicas, no buffering of bodies. Stopped by its PID.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Child, freePort } = require('./processes');
const { processTreeCpuSeconds } = require('./procfs');
const { sleep } = require('./basics');

/** Start nginx balancing over `upstreams` (host:port each); `workers`: worker_processes (default auto, one per core). */
async function startNginx(upstreams, { workers = 'auto' } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-nginx-'));
  const port = await freePort();
  const conf = `
worker_processes ${workers};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream registry {
${upstreams.map((u) => `    server ${u};`).join('\n')}
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 0;
    location / {
      proxy_pass http://registry;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_request_buffering off;
      proxy_buffering off;
    }
  }
}
`;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const child = new Child('nginx');
  child.spawn('nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log'), '-g', 'daemon off;'], { cwd: dir, env: process.env });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      await fetch(`${url}/v2/`).then((r) => r.arrayBuffer());
      break;
    } catch {
      if (child.exitStatus || i > 200) throw new Error(`nginx did not start: ${child.logs()}\n${readIf(path.join(dir, 'error.log'))}`);
      await sleep(50);
    }
  }
  return {
    url,
    pid: child.pid,
    /** CPU seconds of the master and its workers. */
    cpuSeconds: () => processTreeCpuSeconds(child.pid),
    async stop() {
      await child.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function readIf(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

module.exports = { startNginx };
