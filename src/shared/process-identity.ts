import fs from 'node:fs';
import os from 'node:os';

/**
 * Who holds something (a chunk lock, a completing upload): this process, named so that another
 * process on the same machine can tell for certain whether the holder is still alive.
 *
 * `<host>|<machine id>|<boot id>|<pid namespace>|<pid>|<start time>`. The start time (clock
 * ticks since boot, from /proc) tells a reused pid from the original; the boot id and pid
 * namespace say whether the pid can be looked up from here at all. The machine id
 * (/etc/machine-id) tells a rebooted machine from another one: host names and the root pid
 * namespace are alike on cloned machines, so only a matching machine id lets a different boot
 * id mean "rebooted since". A holder that cannot be judged (another machine, /proc or the
 * machine id not readable) is never judged dead: the caller falls back to the holder's expiry.
 */
export interface ProcessIdentity {
  host: string;
  machine: string;
  boot: string;
  pidNamespace: string;
  pid: number;
  startTime: string;
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

function pidNamespace(): string {
  try {
    return fs.readlinkSync('/proc/self/ns/pid');
  } catch {
    return '';
  }
}

/** Field 22 of /proc/<pid>/stat (after the command name, which may itself hold spaces and parentheses). */
function startTimeOf(pid: number): string {
  const stat = readText(`/proc/${pid}/stat`);
  const end = stat.lastIndexOf(')');
  if (end < 0) return '';
  return stat.slice(end + 2).split(' ')[19] ?? '';
}

let self: ProcessIdentity | undefined;

export function currentProcess(): ProcessIdentity {
  self ??= {
    host: os.hostname(),
    machine: readText('/etc/machine-id') || readText('/var/lib/dbus/machine-id'),
    boot: readText('/proc/sys/kernel/random/boot_id'),
    pidNamespace: pidNamespace(),
    pid: process.pid,
    startTime: startTimeOf(process.pid),
  };
  return self;
}

export function formatIdentity(p: ProcessIdentity = currentProcess()): string {
  return [p.host, p.machine, p.boot, p.pidNamespace, p.pid, p.startTime].join('|');
}

export function parseIdentity(text: string): ProcessIdentity | undefined {
  const parts = text.trim().split('|');
  // Five fields: written before the machine id was recorded; its machine is unknown.
  if (parts.length === 5) parts.splice(1, 0, '');
  if (parts.length !== 6) return undefined;
  const [host, machine, boot, pidNamespace, pid, startTime] = parts as [string, string, string, string, string, string];
  if (!/^\d+$/.test(pid)) return undefined;
  return { host, machine, boot, pidNamespace, pid: Number(pid), startTime };
}

/**
 * True only when the holder certainly no longer runs: it lived on this very machine (same
 * machine id and host name) and either the machine rebooted since, or — same boot, same pid
 * namespace — its pid is gone or now belongs to another process. Anything uncertain answers false.
 */
export function isCertainlyGone(holder: ProcessIdentity): boolean {
  return judgeHolder(holder, currentProcess(), startTimeOf) === 'gone';
}

/**
 * The judgement itself, given who is asking and how to read a pid's start time here:
 * 'gone' when certainly dead, 'alive' otherwise (including when it cannot be told).
 */
export function judgeHolder(holder: ProcessIdentity, me: ProcessIdentity, startTimeHere: (pid: number) => string): 'gone' | 'alive' {
  if (!me.machine || !me.boot || !me.pidNamespace || !me.startTime) return 'alive';
  if (holder.machine !== me.machine || holder.host !== me.host) return 'alive';
  if (holder.boot !== me.boot) return 'gone';
  if (holder.pidNamespace !== me.pidNamespace) return 'alive';
  if (holder.pid === me.pid) return holder.startTime !== me.startTime ? 'gone' : 'alive';
  const now = startTimeHere(holder.pid);
  return now === '' || now !== holder.startTime ? 'gone' : 'alive';
}
