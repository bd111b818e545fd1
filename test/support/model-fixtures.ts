import fs from 'node:fs';
import path from 'node:path';

const PHOTOS = path.resolve(import.meta.dirname, '../../.cache/fixtures/photos');

/** Real photographs from Debian packages (scripts/test-fixtures.sh), none of them sexual and none with text. */
export const FIXTURE_PHOTOS = [
  'dog.jpg',
  'horses.jpg',
  'person.jpg',
  'eagle.jpg',
  'giraffe.jpg',
  'kite.jpg',
  'chelsea.png',
  'coffee.png',
  'motorcycle_left.png',
  'astronaut.png',
] as const;

/** The path of a test photo; a clear error when scripts/test-fixtures.sh has not fetched it. */
export function photo(name: string): string {
  const file = path.join(PHOTOS, name);
  if (!fs.existsSync(file)) throw new Error(`the test photo ${name} is missing from .cache/fixtures/photos: run scripts/test-fixtures.sh`);
  return file;
}

/** The words of a text, lower case, punctuation aside: what a word error rate compares. */
export const words = (text: string): string[] =>
  text
    .toLowerCase()
    .replace(/[^a-z0-9' ]+/g, ' ')
    .split(/\s+/)
    .filter(Boolean);

/** Word error rate: (substitutions + deletions + insertions) / reference words, by edit distance over words. */
export function wordErrorRate(reference: string, hypothesis: string): number {
  const ref = words(reference);
  const hyp = words(hypothesis);
  let prev = Array.from({ length: hyp.length + 1 }, (_, j) => j);
  for (let i = 1; i <= ref.length; i++) {
    const row = [i];
    for (let j = 1; j <= hyp.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (ref[i - 1] === hyp[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[hyp.length]! / ref.length;
}
