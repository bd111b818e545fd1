import { spawn } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');
const CHILD = path.join(ROOT, 'test/support/model-child.ts');

/**
 * Runs test/support/model-child.ts (through `prefix` when given, e.g. unshare -n) and returns its first
 * stdout line as JSON; the child keeps running if it does not exit by itself.
 */
export function runModelChild(prefix: string[], args: string[]): Promise<{ line: any; exited: Promise<number | null>; pid: number }> {
  const argv = [...prefix, process.execPath, '--import', 'tsx', CHILD, ...args];
  const child = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (b: Buffer) => (err += b.toString('utf8')));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString('utf8');
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ line: JSON.parse(out.slice(0, nl)), exited, pid: child.pid! });
    });
    void exited.then((code) => reject(new Error(`the child exited with ${code} before printing: ${err.slice(-3000)}`)), reject);
  });
}
