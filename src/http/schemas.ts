import { Type } from 'typebox';

export const ProblemSchema = Type.Object(
  {
    type: Type.String({ description: 'Stable problem type URI: /problems/<slug>' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.Optional(Type.String()),
    instance: Type.Optional(Type.String()),
    request_id: Type.Optional(Type.String()),
  },
  { additionalProperties: true, $id: 'Problem', description: 'RFC 9457 problem details' },
);

const problemRef = Type.Ref('Problem');

/** Problem responses every authenticated route can give. */
export function problemResponses(...statuses: number[]): Record<number, unknown> {
  const out: Record<number, unknown> = { 401: problemRef, 404: problemRef };
  for (const s of statuses) out[s] = problemRef;
  return out;
}

/** `pending`: the local models have not looked at the media yet (owner and admins only). */
export const ModerationStateSchema = Type.Union([
  Type.Literal('none'),
  Type.Literal('pending'),
  Type.Literal('held'),
  Type.Literal('approved'),
  Type.Literal('rejected'),
]);

export const LabelingSchema = Type.Object(
  {
    state: Type.Union([Type.Literal('none'), Type.Literal('pending'), Type.Literal('done'), Type.Literal('failed')]),
    at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    reason: Type.Union([Type.String(), Type.Null()]),
    frames: Type.Union([Type.Integer(), Type.Null()]),
    labels: Type.Union([Type.Integer(), Type.Null()]),
  },
  { description: "Where the local models' labeling stands: pending, done, failed (with a reason), or none (never labeled)" },
);

/** user: by hand; model: the vision models; ocr, transcript, caption: a bank entry found in on-screen text, speech, or text people wrote. */
export const LabelSourceSchema = Type.Union([
  Type.Literal('user'),
  Type.Literal('model'),
  Type.Literal('ocr'),
  Type.Literal('transcript'),
  Type.Literal('caption'),
]);

export const AssetLabelSchema = Type.Object({
  name: Type.String(),
  kind: Type.Union([Type.Literal('general'), Type.Literal('moderation')]),
  source: LabelSourceSchema,
  confidence: Type.Number(),
  count: Type.Integer(),
});

export const MediaSchema = Type.Object(
  {
    id: Type.String(),
    tenant_id: Type.String(),
    user_id: Type.String(),
    status: Type.Union([Type.Literal('queued'), Type.Literal('processing'), Type.Literal('ready'), Type.Literal('error')]),
    error: Type.Union([Type.Object({ code: Type.String(), reason: Type.String() }), Type.Null()]),
    kind: Type.Union([Type.Literal('video'), Type.Literal('audio'), Type.Literal('image'), Type.Literal('document'), Type.Literal('other')]),
    original_filename: Type.String(),
    mime_type: Type.String(),
    size: Type.Integer(),
    sha256: Type.String(),
    caption: Type.Union([Type.String(), Type.Null()]),
    title: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    description: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    user_tags: Type.Array(Type.String()),
    labels: Type.Array(AssetLabelSchema),
    moderation_state: Type.Optional(ModerationStateSchema),
    file_metadata: Type.Object({}, { additionalProperties: true }),
    created_at: Type.String({ format: 'date-time' }),
    updated_at: Type.String({ format: 'date-time' }),
    processing_started_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    ready_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { $id: 'Media' },
);

export const SessionStatusSchema = Type.Object(
  {
    session_id: Type.String(),
    state: Type.Union(['open', 'completing', 'completed', 'failed', 'aborted', 'expired'].map((s) => Type.Literal(s))),
    filename: Type.String(),
    content_type: Type.Union([Type.String(), Type.Null()]),
    total_size: Type.Integer(),
    chunk_size: Type.Integer(),
    chunk_count: Type.Integer(),
    received_chunks: Type.Integer(),
    received_bytes: Type.Integer(),
    missing_chunks: Type.Array(Type.Integer()),
    media_id: Type.Union([Type.String(), Type.Null()]),
    error: Type.Union([Type.String(), Type.Null()]),
    created_at: Type.String({ format: 'date-time' }),
    updated_at: Type.String({ format: 'date-time' }),
    expires_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'UploadSession' },
);
