import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface ToolResult {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** The tool was stopped once its output reached `stdoutLimit` (what it wrote so far is in `stdout`). */
  stdoutCut?: boolean;
}

export interface ToolOptions {
  timeoutMs: number;
  cwd?: string;
  /**
   * Bytes of stdout wanted at most: the tool is killed once it has written them, and `stdout`
   * holds exactly that many (a tool whose whole output is its result, such as pdftotext, need
   * not run on past what is kept). Without it stdout is captured up to 4 MiB and the rest read
   * and dropped.
   */
  stdoutLimit?: number;
}

const MAX_CAPTURE = 4 * 1024 * 1024;

/** setpriv exits with this when it cannot execute the program it was given. */
const SETPRIV_EXEC_FAILED = 127;

let setprivPath: string | null | undefined;

/** util-linux's setpriv on the PATH, or null (not Linux, or not installed). Looked up once. */
function findSetpriv(): string | null {
  if (setprivPath !== undefined) return setprivPath;
  setprivPath = null;
  if (process.platform !== 'linux') return null;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir || '.', 'setpriv');
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      setprivPath = candidate;
      break;
    } catch {
      // not in this folder
    }
  }
  return setprivPath;
}

let warnedNoSetpriv = false;

/**
 * Warns once per process when tools cannot be tied to their worker's life (no setpriv): an
 * operator should know that a killed worker leaves its ffmpeg running. Returns whether it warned.
 */
export function warnIfToolsOutliveWorker(log: { warn(msg: string): void }): boolean {
  if (findSetpriv() || warnedNoSetpriv) return false;
  warnedNoSetpriv = true;
  log.warn(
    'setpriv (util-linux) is not on the PATH: tools such as ffmpeg will outlive a worker that is killed, and may run beside its retried job; install util-linux',
  );
  return true;
}

/**
 * The argv that starts `cmd` so that the kernel kills it when the process that spawned it
 * dies, even by SIGKILL (`setpriv --pdeathsig`, which then execs `cmd` in place: same pid).
 * Without it a killed worker leaves ffmpeg running beside the retried attempt.
 */
export function toolArgv(cmd: string, args: readonly string[]): { file: string; args: string[]; wrapped: boolean } {
  const setpriv = findSetpriv();
  if (!setpriv) return { file: cmd, args: [...args], wrapped: false };
  return { file: setpriv, args: ['--pdeathsig', 'SIGKILL', '--', cmd, ...args], wrapped: true };
}

/**
 * Runs a command as a child process (never through a shell), with a time limit that kills
 * it, capped output capture, and no stdin; it dies with this process (see toolArgv). Resolves
 * with the outcome; rejects only when the program cannot be started.
 */
export function runTool(cmd: string, args: readonly string[], opts: ToolOptions): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const argv = toolArgv(cmd, args);
    const child = spawn(argv.file, argv.args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    let timedOut = false;
    let stdoutCut = false;
    const limit = opts.stdoutLimit;
    child.stdout.on('data', (b: Buffer) => {
      if (limit === undefined) {
        if (outLen < MAX_CAPTURE) out.push(b);
        outLen += b.length;
        return;
      }
      if (stdoutCut) return;
      if (outLen + b.length > limit) {
        out.push(b.subarray(0, limit - outLen));
        outLen = limit;
        stdoutCut = true;
        child.kill('SIGKILL');
        return;
      }
      out.push(b);
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
      const stderr = Buffer.concat(err).toString('utf8');
      if (argv.wrapped && code === SETPRIV_EXEC_FAILED && /^setpriv: failed to execute/m.test(stderr)) {
        // The same outcome as spawning the program directly: it could not be started.
        reject(Object.assign(new Error(`spawn ${cmd} ENOENT`), { code: 'ENOENT', path: cmd }));
        return;
      }
      resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr, code, signal, timedOut, ...(stdoutCut ? { stdoutCut } : {}) });
    });
  });
}

/** The last lines of stderr, for error reasons: enough to read, never the whole log. */
export function trimStderr(stderr: string, maxLines = 8, maxChars = 1000): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.slice(-maxLines).join('\n').slice(-maxChars);
}
