/**
 * A process that uses ModelHost, for tests that need it in a process of its own:
 *   vision <file>   prints {"result": VisionResult, "interfaces": [network interfaces it sees]} and exits
 *   orphan          starts the model process, prints {"pid": its pid} and waits to be killed
 */
import fs from 'node:fs';
import { ModelHost } from '../../src/models/model-host.js';

const [mode, file] = process.argv.slice(2);
const host = new ModelHost();
if (mode === 'vision') {
  const result = await host.vision(file!);
  // /proc/net/dev lists the interfaces of this process's network namespace.
  const interfaces = fs
    .readFileSync('/proc/net/dev', 'utf8')
    .split('\n')
    .slice(2)
    .map((line) => line.split(':')[0]!.trim())
    .filter(Boolean);
  console.log(JSON.stringify({ result, interfaces }));
  await host.close();
} else if (mode === 'orphan') {
  const { pid } = await host.stats();
  console.log(JSON.stringify({ pid }));
  setInterval(() => undefined, 60_000);
} else {
  throw new Error(`unknown mode ${mode}`);
}
