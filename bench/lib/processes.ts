import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';

/** RSS (MB) of a process and its descendants, read from /proc; with `only`, of those whose command line it accepts. */
export function rssOfTree(pid: number, only?: (cmdline: string) => boolean): number {
  let total = 0;
  const visit = (p: number) => {
    try {
      if (!only || only(fs.readFileSync(`/proc/${p}/cmdline`, 'utf8'))) {
        total += Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0);
      }
      const children = fs.readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim();
      for (const c of children ? children.split(' ') : []) visit(Number(c));
    } catch {
      // gone
    }
  };
  visit(pid);
  return total / 1024;
}

/** Resolves with the first match of `re` in what the child printed on stdout (a server's start-up lines). */
export function waitForLine(child: ChildProcess, re: RegExp, timeoutMs = 120_000): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`no ${re} in: ${out}`)), timeoutMs);
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = out.match(re);
      if (m) {
        clearTimeout(t);
        resolve(m);
      }
    });
  });
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}
