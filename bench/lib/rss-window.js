'use strict';
// Peak and settled RSS of both registries over one measurement: VmHWM reset before it and read when a
// server's last run ends (peak), then VmRSS a few seconds later with no request sent to that server
// (settled). The peak alone does not show what a server keeps once it goes quiet.

const { sleep } = require('./basics');
const { readStatusKiB, resetPeakRss } = require('./procfs');

const mib = (pid, field) => {
  const k = readStatusKiB(pid, field);
  return k === null ? null : k / 1024;
};

class RssWindow {
  /** Resets the VmHWM of every registry in `regs` ({ id, pid }); settled readings come `settleSeconds` after. */
  constructor(regs, settleSeconds) {
    this.settleSeconds = settleSeconds;
    this.servers = new Map(regs.map((r) => [r.id, { pid: r.pid, hwmReset: resetPeakRss(r.pid), peakMiB: null, settled: null }]));
  }

  /**
   * `reg`'s last run of the measurement has ended: its peak now, its settled RSS settleSeconds later (the
   * other registry may run meanwhile, so each server gets the same quiet time however long the other takes).
   */
  ended(reg) {
    const s = this.servers.get(reg.id);
    s.peakMiB = mib(s.pid, 'VmHWM');
    s.settled = sleep(this.settleSeconds * 1000).then(() => mib(s.pid, 'VmRSS'));
  }

  /** Both servers' { peakMiB, settledMiB, hwmReset }, once the settled readings are in; a server not ended() ends now. */
  async result() {
    const out = { settleSeconds: this.settleSeconds };
    for (const [id, s] of this.servers) {
      if (!s.settled) this.ended({ id });
      out[id] = { peakMiB: s.peakMiB, settledMiB: await s.settled, hwmReset: s.hwmReset };
    }
    return out;
  }
}

module.exports = { RssWindow };
