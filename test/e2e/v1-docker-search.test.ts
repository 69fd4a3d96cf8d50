import t from 'tap';
import { startDockerd } from '../helpers/dockerd';
import { startRegistry } from '../helpers/server';
import { requireTools } from '../helpers/tools';
import { imageChain, pushV1 } from '../helpers/v1';

// Acceptance: `docker search 127.0.0.1:PORT/term` from Debian's docker.io (dockerd started by the test)
// finds the pushed repository. dockerd searches through GET /v1/_ping and GET /v1/search?q=term&n=25 only
// (v1-protocol.md 6.5, 2.20), whatever else the registry serves.

/** Repository names in `docker search` table output (first column, header dropped, host prefix kept). */
function names(table: string): string[] {
  const lines = table.split('\n').filter((l) => l.trim() !== '');
  return lines.slice(1).map((l) => l.trim().split(/\s+/)[0]!);
}

t.test('docker search (Debian docker.io dockerd) finds a repository pushed over v1', async (t) => {
  if (!requireTools(t, ['dockerd', 'docker'])) return;

  const reg = await startRegistry(t);
  await pushV1(reg.url, 'acme/widget-server', 'latest', imageChain(2));
  await pushV1(reg.url, 'acme/gadget', 'latest', imageChain(1));

  const d = await startDockerd(t);
  const version = await d.docker(['version', '--format', '{{.Server.Version}}']);
  t.equal(version.code, 0, `dockerd answers: ${version.stdout.trim()} ${version.stderr.trim()}`);

  // Docker prints either "acme/widget-server" or, for a private index, "127.0.0.1:PORT/acme/widget-server".
  const wanted = new RegExp(`^(${reg.host.replace(/[.]/g, '\\.')}/)?acme/widget-server$`);

  const hit = await d.docker(['search', '--no-trunc', `${reg.host}/widget`]);
  t.equal(hit.code, 0, 'docker search exits 0');
  t.equal(hit.stderr.trim(), '', 'nothing on stderr');
  t.match(hit.stdout, /^NAME\s+DESCRIPTION\s+STARS\s+OFFICIAL\s+AUTOMATED/, 'table header');
  const hitNames = names(hit.stdout);
  t.equal(hitNames.length, 1, 'exactly one repository listed', { stdout: hit.stdout });
  t.match(hitNames[0] ?? '', wanted, 'the pushed repository is listed');
  t.notOk(hit.stdout.includes('gadget'), 'a repository that does not match is not listed');

  // Same search, machine-readable: name, stars and official flag as dockerd decoded them.
  const formatted = await d.docker(['search', '--no-trunc', '--format', '{{.Name}}|{{.StarCount}}|{{.IsOfficial}}', `${reg.host}/widget`]);
  t.equal(formatted.code, 0, 'docker search --format exits 0');
  const rows = formatted.stdout.split('\n').filter(Boolean).map((l) => l.split('|'));
  t.equal(rows.length, 1, 'one result');
  t.match(rows[0]?.[0] ?? '', wanted, 'result name');
  t.equal(rows[0]?.[1], '0', 'no stars');
  t.equal(rows[0]?.[2], '', 'not official (the CLI prints [OK] only when true)');

  // Case-insensitive substring match on the name, as DR's LIKE '%q%' on SQLite.
  const upper = await d.docker(['search', '--format', '{{.Name}}', `${reg.host}/Server`]);
  t.equal(upper.code, 0, 'docker search with an upper-case term exits 0');
  t.match(upper.stdout.trim(), wanted, 'upper-case term matches too');

  const miss = await d.docker(['search', '--no-trunc', `${reg.host}/nosuchthing`]);
  t.equal(miss.code, 0, 'a search without hits exits 0');
  t.same(names(miss.stdout), [], 'no repository listed', { stdout: miss.stdout });
  t.notOk(/widget|gadget/.test(miss.stdout), 'neither pushed repository appears');
});
