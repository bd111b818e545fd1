/**
 * Where the local models' labeling of a media stands, as its record and labels show it:
 * `pending` while the labeling follow-up is to come, `done` or `failed` (with a reason people
 * read) after, `none` when the models never looked at it (labeling off, or an audio file).
 */
export interface LabelingView {
  state: 'none' | 'pending' | 'done' | 'failed';
  /** When it was last done or failed. */
  at: string | null;
  reason: string | null;
  /** How many frames the models looked at, and how many labels they gave. */
  frames: number | null;
  labels: number | null;
}

export function labelingOf(fileMetadata: Record<string, unknown>): LabelingView {
  const last = (fileMetadata.labeling ?? null) as { state?: string; at?: string; reason?: string; frames?: number; labels?: number; request?: number } | null;
  // A recompute asked for after the last run started is still to come.
  const asked = Number(fileMetadata.labeling_request ?? 0) > Number(last?.request ?? 0);
  const pending = asked || (Array.isArray(fileMetadata.pending) && fileMetadata.pending.includes('labels'));
  const state = pending ? 'pending' : last?.state === 'done' || last?.state === 'failed' ? last.state : 'none';
  return {
    state,
    at: last?.at ?? null,
    reason: !pending && last?.state === 'failed' ? (last.reason ?? null) : null,
    frames: typeof last?.frames === 'number' ? last.frames : null,
    labels: typeof last?.labels === 'number' ? last.labels : null,
  };
}
