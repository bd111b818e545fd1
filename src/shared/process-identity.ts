import fs from 'node:fs';
import os from 'node:os';

/**
 * Who holds something (a chunk lock, a completing upload): this process, named so that another
 * process on the same machine can tell for certain whether the holder is still alive.
 *
 * `<host>|<boot id>|<pid namespace>|<pid>|<start time>`. The start time (clock ticks since boot,
 * from /proc) tells a reused pid from the original; the boot id and pid namespace say whether
 * the pid can be looked up from here at all. A holder on another machine (or where /proc is not
 * readable) is never judged dead: the caller falls back to the holder's expiry.
 */
export interface ProcessIdentity {
  host: string;
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
    boot: readText('/proc/sys/kernel/random/boot_id'),
    pidNamespace: pidNamespace(),
    pid: process.pid,
    startTime: startTimeOf(process.pid),
  };
  return self;
}

export function formatIdentity(p: ProcessIdentity = currentProcess()): string {
  return [p.host, p.boot, p.pidNamespace, p.pid, p.startTime].join('|');
}

export function parseIdentity(text: string): ProcessIdentity | undefined {
  const parts = text.trim().split('|');
  if (parts.length !== 5) return undefined;
  const [host, boot, pidNamespace, pid, startTime] = parts as [string, string, string, string, string];
  if (!/^\d+$/.test(pid)) return undefined;
  return { host, boot, pidNamespace, pid: Number(pid), startTime };
}

/**
 * True only when the holder certainly no longer runs: it lived on this machine, in this pid
 * namespace, and either the machine rebooted since or its pid is gone or now belongs to
 * another process. Anything uncertain answers false.
 */
export function isCertainlyGone(holder: ProcessIdentity): boolean {
  const me = currentProcess();
  if (!me.boot || !me.pidNamespace || !me.startTime) return false;
  if (holder.host !== me.host || holder.pidNamespace !== me.pidNamespace) return false;
  if (holder.boot !== me.boot) return true;
  if (holder.pid === me.pid) return holder.startTime !== me.startTime;
  const now = startTimeOf(holder.pid);
  return now === '' || now !== holder.startTime;
}
