/**
 * A process that uses ModelHost, for tests that need it in a process of its own:
 *   vision <file>                prints {"result": VisionResult, "interfaces": [...]} and exits
 *   ocr-speech <picture> <pcm>   reads the picture's text, finds the speech in the sound file and
 *                                transcribes it; prints {"ocr", "speech", "transcript", "interfaces"} and exits
 *   orphan                       starts the model process, prints {"pid": its pid} and waits to be killed
 * "interfaces" lists the network interfaces the process sees (/proc/net/dev: its network namespace's).
 */
import fs from 'node:fs';
import { ModelHost } from '../../src/models/model-host.js';

const interfaces = () =>
  fs
    .readFileSync('/proc/net/dev', 'utf8')
    .split('\n')
    .slice(2)
    .map((line) => line.split(':')[0]!.trim())
    .filter(Boolean);

const [mode, file, pcm] = process.argv.slice(2);
const host = new ModelHost();
if (mode === 'vision') {
  const result = await host.vision(file!);
  console.log(JSON.stringify({ result, interfaces: interfaces() }));
  await host.close();
} else if (mode === 'ocr-speech') {
  const ocr = await host.ocr(file!);
  const speech = await host.speech(pcm!);
  const transcript = await host.transcribe(pcm!, { windows: speech.segments });
  console.log(JSON.stringify({ ocr, speech, transcript, interfaces: interfaces() }));
  await host.close();
} else if (mode === 'orphan') {
  const { pid } = await host.stats();
  console.log(JSON.stringify({ pid }));
  setInterval(() => undefined, 60_000);
} else {
  throw new Error(`unknown mode ${mode}`);
}
