/** The messages between HashThread and its worker (hash-worker.ts). */

export interface PrefixArgs {
  dir: string;
  dataFile: string;
  next: number;
  chunkCount: number;
  chunkSize: number;
  totalSize: number;
}

export type HashRequest = { id: number; state: string } & (
  | { op: 'update'; buf: ArrayBuffer; length: number }
  | ({ op: 'prefix' } & PrefixArgs)
  | { op: 'feed'; file: string; start: number; length: number }
  | { op: 'digest' }
  | { op: 'drop' }
);

/** Distributes Omit over the union, so each request keeps its own fields. */
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;
export type HashCall = WithoutId<HashRequest>;

export interface HashReply {
  id: number;
  value?: unknown;
  error?: { message: string; code?: string };
}
