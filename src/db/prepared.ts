import type { Compilable, CompiledQuery, Kysely } from 'kysely';
import type { Database } from './schema.js';

/** Stands for an argument (or one element of an array argument) while the query is compiled. */
class Slot {
  constructor(
    readonly arg: number,
    readonly element: number,
  ) {}
}

interface Template {
  compiled: CompiledQuery;
  /** Per parameter: the slot it takes its value from, or null for a value the query itself fixed. */
  slots: (Slot | null)[];
}

/** Shapes of array arguments kept compiled per database (an `in` list per length). */
const MAX_SHAPES = 64;

/**
 * A query built and compiled once per database and argument shape; each call only binds its
 * arguments. Kysely otherwise rebuilds and recompiles the query tree on every call, which on the
 * hottest reads (one media by id, an API key) costs more than the database takes to answer.
 * Arguments must be used as values; an array argument as an `in` list (one template per length).
 * The SQL must not depend on the values otherwise (no optional filters).
 */
export function preparedQuery<A extends unknown[], R>(build: (db: Kysely<Database>, ...args: A) => Compilable<R>) {
  const templates = new WeakMap<Kysely<Database>, Map<string, Template>>();
  const bind = (db: Kysely<Database>, args: A): CompiledQuery<R> => {
    const shape = args.map((a) => (Array.isArray(a) ? a.length : '-')).join(',');
    let byShape = templates.get(db);
    if (!byShape) {
      byShape = new Map();
      templates.set(db, byShape);
    }
    let t = byShape.get(shape);
    if (!t) {
      const stand = args.map((a, i) => (Array.isArray(a) ? a.map((_, j) => new Slot(i, j)) : new Slot(i, -1))) as A;
      const compiled = build(db, ...stand).compile();
      t = { compiled, slots: compiled.parameters.map((p) => (p instanceof Slot ? p : null)) };
      // An argument the query turned into something else (stringified, wrapped) would be fixed
      // in the template with the first call's value: refuse such a query outright.
      const bound = new Set(t.slots.filter((s) => s !== null).map((s) => `${s.arg}:${s.element}`));
      const expected = stand.flatMap((a) => (Array.isArray(a) ? (a as Slot[]) : [a as Slot])).map((s) => `${s.arg}:${s.element}`);
      if (expected.some((k) => !bound.has(k))) throw new Error('preparedQuery: every argument must be bound as a value (an array as an in-list)');
      if (byShape.size < MAX_SHAPES) byShape.set(shape, t);
    }
    const { compiled, slots } = t;
    const parameters = slots.map((s, i) => (s === null ? compiled.parameters[i] : s.element < 0 ? args[s.arg] : (args[s.arg] as unknown[])[s.element]));
    return { ...compiled, parameters } as CompiledQuery<R>;
  };
  return {
    async all(db: Kysely<Database>, ...args: A): Promise<R[]> {
      return (await db.executeQuery(bind(db, args))).rows;
    },
    async first(db: Kysely<Database>, ...args: A): Promise<R | undefined> {
      return (await db.executeQuery(bind(db, args))).rows[0];
    },
  };
}
