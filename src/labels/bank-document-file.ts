import fs from 'node:fs/promises';
import { Value } from 'typebox/value';
import { AppError } from '../shared/errors.js';
import { BankDocSchema, type BankDoc } from './bank-format.js';

/** Reads and validates a bank document from a file (the CLI's global bank import). */
export async function readBankDocument(file: string): Promise<BankDoc> {
  let doc: unknown;
  try {
    doc = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (err) {
    throw new AppError('malformed-body', `${file}: ${(err as Error).message}`);
  }
  if (!Value.Check(BankDocSchema, doc)) {
    const first = [...Value.Errors(BankDocSchema, doc)][0];
    throw new AppError('validation-failed', `${file}: not a label bank document${first ? ` (${first.instancePath || '/'} ${first.message})` : ''}`);
  }
  return doc;
}
