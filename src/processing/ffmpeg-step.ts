import { PermanentJobError } from '../shared/errors.js';
import { ToolFailure } from '../tools/tool-failure.js';
import { runTool, trimStderr } from '../tools/run-tool.js';

/** Errors that say the machine, not the input, is at fault: worth a retry. */
const TRANSIENT = /No space left on device|Cannot allocate memory|Resource temporarily unavailable|Too many open files/i;

/**
 * Runs one ffmpeg step with its time limit. A timeout or a failed decode is permanent; a
 * signal or resource trouble is retried. Returns the wall time in ms and what ffmpeg printed
 * on stdout (its progress reports, when asked for with `-progress pipe:1`) and stderr (its log).
 */
export async function runFfmpegStep(args: string[], timeoutMs: number, what: string, kind = 'video'): Promise<{ ms: number; stdout: string; stderr: string }> {
  const started = Date.now();
  const res = await runTool('ffmpeg', args, { timeoutMs });
  if (res.timedOut) throw new PermanentJobError(`${what} took longer than ${Math.round(timeoutMs / 1000)} s`, 'timeout');
  if (res.code !== 0) {
    const reason = trimStderr(res.stderr) || `ffmpeg exited with ${res.code ?? res.signal}`;
    if (TRANSIENT.test(res.stderr) || res.signal) throw new Error(reason);
    throw new ToolFailure(`the ${kind} could not be decoded: the file is damaged or encoded in a way that cannot be read`, 'transcode-failed', reason);
  }
  return { ms: Date.now() - started, stdout: res.stdout, stderr: res.stderr };
}
