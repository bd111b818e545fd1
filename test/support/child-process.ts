import type { ChildProcess } from 'node:child_process';

/** Resolves with the first line of the child's stdout that matches; fails if it exits or times out first. */
export function waitForLine(child: ChildProcess, re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => finish(new Error(`timed out waiting for ${re} from the child; stdout: ${out} stderr: ${err}`)), timeoutMs);
    const onOut = (chunk: Buffer) => {
      out += chunk.toString();
      for (const line of out.split('\n')) {
        const m = re.exec(line.trim());
        if (m) return finish(undefined, m);
      }
    };
    const onErr = (chunk: Buffer) => {
      err += chunk.toString();
    };
    const onExit = (code: number | null, signal: string | null) =>
      finish(new Error(`the child exited (${code ?? signal}) before printing ${re}; stdout: ${out} stderr: ${err}`));
    const finish = (e: Error | undefined, m?: RegExpMatchArray) => {
      clearTimeout(timer);
      child.stdout!.off('data', onOut);
      child.stderr!.off('data', onErr);
      child.off('exit', onExit);
      // Keep draining the pipes so that the child never blocks on a full one.
      child.stdout!.resume();
      child.stderr!.resume();
      if (e) reject(e);
      else resolve(m!);
    };
    child.stdout!.on('data', onOut);
    child.stderr!.on('data', onErr);
    child.once('exit', onExit);
  });
}

export async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGKILL');
  await exited;
}
