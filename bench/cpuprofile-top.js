'use strict';
// Summarize a V8 .cpuprofile (from `node --cpu-prof`): where the time went, without a GUI.
//
// Usage: node bench/cpuprofile-top.js FILE.cpuprofile [--top N] [--filter SUBSTRING] [--callers NAME] [--depth D]
//   Prints the share of idle, GC and program time, then the top N functions by self time and by
//   inclusive (self + callees) time, as % of the busy (non-idle) time. --filter keeps only functions
//   whose name or file contains SUBSTRING in the listings (the percentages stay of all busy time).
//   --callers NAME: instead, the top N call paths (D frames up, default 10) of the samples whose own
//   function is NAME (exact function name), so native frames like writeBuffers can be placed.
//
// Profile a server run, e.g.:
//   BENCH_ONLY=pull BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" node bench/side-by-side.js
//   node bench/cpuprofile-top.js /tmp/prof/*.cpuprofile
//
// Plain CommonJS, Node built-ins only.

const fs = require('node:fs');
const path = require('node:path');

function parseArgs(argv) {
  const out = { files: [], top: 25, filter: null, callers: null, depth: 10 };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--top') out.top = Number(argv[++i]);
    else if (argv[i] === '--filter') out.filter = argv[++i];
    else if (argv[i] === '--callers') out.callers = argv[++i];
    else if (argv[i] === '--depth') out.depth = Number(argv[++i]);
    else out.files.push(argv[i]);
  }
  if (!out.files.length) {
    console.error('usage: node bench/cpuprofile-top.js FILE.cpuprofile [--top N] [--filter SUBSTRING]');
    process.exit(2);
  }
  return out;
}

function shortUrl(url) {
  if (!url) return '';
  const u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) return u.slice(nm + 1);
  const root = path.resolve(__dirname, '..') + '/';
  return u.startsWith(root) ? u.slice(root.length) : u;
}

function keyOf(cf) {
  const name = cf.functionName || '(anonymous)';
  const where = cf.url ? `${shortUrl(cf.url)}:${cf.lineNumber + 1}` : '';
  return where ? `${name} ${where}` : name;
}

function summarize(file, { top, filter, callers, depth }) {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
  const byId = new Map();
  const parent = new Map();
  for (const n of prof.nodes) byId.set(n.id, n);
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const self = new Map();
  const incl = new Map();
  const paths = new Map();
  let total = 0;
  let idle = 0;
  let gc = 0;
  let program = 0;
  const { samples, timeDeltas } = prof;
  for (let i = 0; i < samples.length; i++) {
    const dt = (timeDeltas[i + 1] ?? timeDeltas[i] ?? 0) / 1000; // ms until the next sample
    if (dt <= 0) continue;
    const node = byId.get(samples[i]);
    const name = node.callFrame.functionName;
    total += dt;
    if (name === '(idle)') {
      idle += dt;
      continue;
    }
    if (name === '(garbage collector)') gc += dt;
    if (name === '(program)') program += dt;
    const k = keyOf(node.callFrame);
    self.set(k, (self.get(k) ?? 0) + dt);
    if (callers && name === callers) {
      const chain = [];
      for (let id = parent.get(node.id); id !== undefined && chain.length < depth; id = parent.get(id)) {
        const kk = keyOf(byId.get(id).callFrame);
        if (kk !== '(root)') chain.push(kk);
      }
      const pk = chain.join('\n        <- ');
      paths.set(pk, (paths.get(pk) ?? 0) + dt);
    }
    const seen = new Set();
    for (let id = node.id; id !== undefined; id = parent.get(id)) {
      const kk = keyOf(byId.get(id).callFrame);
      if (kk === '(root)' || seen.has(kk)) continue;
      seen.add(kk);
      incl.set(kk, (incl.get(kk) ?? 0) + dt);
    }
  }
  const busy = total - idle;
  const pct = (x) => `${((100 * x) / busy).toFixed(1).padStart(5)} %`;
  const ms = (x) => `${x.toFixed(0).padStart(8)} ms`;
  const lines = [];
  lines.push(`${path.basename(file)}: ${(total / 1000).toFixed(1)} s profiled, busy ${(busy / 1000).toFixed(1)} s, idle ${(idle / 1000).toFixed(1)} s`);
  lines.push(`  of busy time: garbage collector ${pct(gc)}, (program) ${pct(program)} (native code outside JS frames)`);
  const list = (m, title) => {
    lines.push(`  top ${top} by ${title}:`);
    const rows = [...m.entries()].filter(([k]) => !filter || k.includes(filter)).sort((a, b) => b[1] - a[1]).slice(0, top);
    for (const [k, v] of rows) lines.push(`    ${pct(v)} ${ms(v)}  ${k}`);
  };
  if (callers) {
    const rows = [...paths.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
    lines.push(`  ${callers}: ${pct(self.get(callers) ?? [...self.entries()].filter(([k]) => k.startsWith(callers + ' ')).reduce((a, [, v]) => a + v, 0))} self; top ${top} call paths:`);
    for (const [k, v] of rows) lines.push(`    ${pct(v)} ${ms(v)}  ${callers}\n        <- ${k}`);
    return lines.join('\n');
  }
  list(self, 'self time');
  list(incl, 'inclusive time');
  return lines.join('\n');
}

const args = parseArgs(process.argv.slice(2));
for (const f of args.files) console.log(summarize(f, args) + '\n');
