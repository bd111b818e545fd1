import fs from 'node:fs';
import path from 'node:path';

/**
 * The node flags a checkout's `bin/qasar.js` runs with (its `#!/usr/bin/env -S node …` line), so
 * a benchmark starts the server as it ships and can still add flags of its own (`--cpu-prof` is
 * not accepted in NODE_OPTIONS).
 */
export function shippedNodeFlags(root: string): string[] {
  const first = fs.readFileSync(path.join(root, 'bin/qasar.js'), 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\S*env\s+(?:-S\s+)?node\b(.*)$/.exec(first);
  return m ? m[1]!.trim().split(/\s+/).filter(Boolean) : [];
}
