import { Type, type Static, type TSchema } from 'typebox';

/** The versioned JSON shape banks are exported as and imported from. */
export const BANK_FORMAT = 'qasar.label-bank' as const;
export const BANK_FORMAT_VERSION = 1 as const;
export const MAX_PHRASES_PER_ENTRY = 100;

/**
 * A nullable primitive as one JSON-schema type list: the server coerces types, and with a union
 * (anyOf) a null would be coerced into the first branch ("" or 0) or a 0 into null.
 */
export function nullable<T extends TSchema & { type: string }>(schema: T) {
  return Type.Unsafe<Static<T> | null>({ ...schema, type: [schema.type, 'null'] });
}

/** The similarity (0-1) a text must reach to match one of a bank's entries by meaning. */
export const MatchThresholdSchema = Type.Number({ minimum: 0, maximum: 1, description: 'Similarity (0-1) a text must reach to match an entry by meaning' });

const LabelKindSchema = Type.Union([Type.Literal('general'), Type.Literal('moderation')]);

export const BankEntryDocSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    parent: Type.Optional(nullable(Type.String({ minLength: 1, maxLength: 200 }))),
    phrases: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: MAX_PHRASES_PER_ENTRY })),
    threshold: Type.Optional(nullable(Type.Number({ minimum: 0, maximum: 1 }))),
  },
  { additionalProperties: false },
);

export const BankDocSchema = Type.Object(
  {
    format: Type.Literal(BANK_FORMAT),
    version: Type.Literal(BANK_FORMAT_VERSION),
    name: Type.String({ minLength: 1, maxLength: 200 }),
    kind: Type.Optional(LabelKindSchema),
    description: Type.Optional(nullable(Type.String({ maxLength: 2000 }))),
    match_threshold: Type.Optional(nullable(MatchThresholdSchema)),
    entries: Type.Array(BankEntryDocSchema),
  },
  { additionalProperties: false, description: 'A label bank as exported, and as accepted by import' },
);

export type BankEntryDoc = Static<typeof BankEntryDocSchema>;
export type BankDoc = Static<typeof BankDocSchema>;
