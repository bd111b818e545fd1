import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { shippedNodeFlags } from './shipped-node-flags.js';

/**
 * Starts the built server as `qasar api` runs it (the TypeScript loader would be measured too),
 * with the node flags it ships with plus `nodeArgs`, on a free port. Resolves once `ready`
 * matches what it printed, with the match.
 */
export function startBuiltServer(
  root: string,
  env: Record<string, string>,
  ready: RegExp,
  nodeArgs: string[] = [],
): Promise<{ proc: ChildProcess; match: RegExpExecArray }> {
  if (!fs.existsSync(path.join(root, 'dist/cli/main.js'))) throw new Error('dist/cli/main.js is missing: run npm run build first');
  const proc = spawn(process.execPath, [...shippedNodeFlags(root), ...nodeArgs, path.join(root, 'bin/qasar.js'), 'api'], {
    cwd: root,
    env: { ...process.env, ...env, PORT: '0', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = ready.exec(out);
      if (m) resolve({ proc, match: m });
    });
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}: ${out}`)));
  });
}
