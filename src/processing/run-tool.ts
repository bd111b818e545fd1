import { spawn } from 'node:child_process';

export interface ToolResult {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
}

const MAX_CAPTURE = 4 * 1024 * 1024;

/**
 * Runs a command as a child process (never through a shell), with a time limit that kills
 * it, capped output capture, and no stdin. Resolves with the outcome; rejects only when the
 * program cannot be started.
 */
export function runTool(cmd: string, args: readonly string[], opts: { timeoutMs: number; cwd?: string }): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    let timedOut = false;
    child.stdout.on('data', (b: Buffer) => {
      if (outLen < MAX_CAPTURE) out.push(b);
      outLen += b.length;
    });
    child.stderr.on('data', (b: Buffer) => {
      if (errLen < MAX_CAPTURE) err.push(b);
      errLen += b.length;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), code, signal, timedOut });
    });
  });
}

/** The last lines of stderr, for error reasons: enough to read, never the whole log. */
export function trimStderr(stderr: string, maxLines = 8, maxChars = 1000): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.slice(-maxLines).join('\n').slice(-maxChars);
}
