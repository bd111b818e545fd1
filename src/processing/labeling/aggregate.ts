import type { LabelFrame, LabelInput } from '../../labels/asset-labels.js';
import { moderationLabel, objectLabel, type TaxonomyLabel } from './taxonomy.js';

/** What the vision models said about one frame (or one image: `t` 0). */
export interface FrameLook {
  /** Seconds into the media. */
  t: number;
  objects: ReadonlyArray<{ cls: string; score: number; box: [number, number, number, number] }>;
  nsfw: ReadonlyArray<{ cls: string; score: number }>;
}

export interface LabelingThresholds {
  /** Smallest detector score kept as an object (COCO-SSD misnames things below about 0.6). */
  objects: number;
  /** Smallest confidence kept as a general label (LABELING_THRESHOLD). */
  labels: number;
}

interface Seen {
  kind: 'general' | 'moderation';
  frames: LabelFrame[];
  /** The best confidence in each frame it was seen in, by time. */
  best: Map<number, number>;
}

const round = (n: number) => Math.round(n * 10000) / 10000;

function see(into: Map<string, Seen>, name: string, kind: Seen['kind'], frame: LabelFrame & { confidence: number }): void {
  let s = into.get(name);
  if (!s) {
    s = { kind, frames: [], best: new Map() };
    into.set(name, s);
  }
  s.frames.push(frame);
  s.best.set(frame.t, Math.max(s.best.get(frame.t) ?? 0, frame.confidence));
}

/**
 * The labels of a media from what the models saw in its frames: for each label, every frame
 * it was seen in (time, box, confidence), the number of frames (`count`), its highest
 * confidence and the sum of the per-frame bests (mean = sum / count). A label's parent is a
 * label too, seen wherever a child was, at the child's confidence.
 *
 * Moderation labels are always kept, however low their score, so that a moderation threshold
 * below LABELING_THRESHOLD still applies and moderators see the scores; their frames are those
 * at or above LABELING_THRESHOLD, or the one frame where the score was highest.
 */
export function labelsFromFrames(looks: readonly FrameLook[], th: LabelingThresholds): LabelInput[] {
  const seen = new Map<string, Seen>();
  const floor = Math.max(th.objects, th.labels);
  for (const look of looks) {
    for (const o of look.objects) {
      if (o.score < floor) continue;
      const label = objectLabel(o.cls);
      if (!label) continue;
      const confidence = round(o.score);
      see(seen, label.label, 'general', { t: look.t, box: o.box.map(round) as LabelFrame['box'], confidence });
      if (label.parent) seeParent(seen, label, 'general', look.t, confidence);
    }
  }
  const moderation = new Map<string, Array<{ t: number; confidence: number; label: TaxonomyLabel }>>();
  for (const look of looks) {
    for (const n of look.nsfw) {
      const label = moderationLabel(n.cls);
      if (!label) continue;
      const list = moderation.get(label.label) ?? [];
      list.push({ t: look.t, confidence: round(n.score), label });
      moderation.set(label.label, list);
    }
  }
  for (const [name, list] of moderation) {
    const kept = list.filter((f) => f.confidence >= th.labels);
    const frames = kept.length ? kept : [list.reduce((a, b) => (b.confidence > a.confidence ? b : a))];
    for (const f of frames) {
      see(seen, name, 'moderation', { t: f.t, confidence: f.confidence });
      if (f.label.parent) seeParent(seen, f.label, 'moderation', f.t, f.confidence);
    }
  }
  return [...seen].map(([name, s]) => {
    const bests = [...s.best.values()];
    return {
      name,
      kind: s.kind,
      source: 'model' as const,
      confidence: Math.max(...bests),
      count: bests.length,
      confidenceSum: round(bests.reduce((a, b) => a + b, 0)),
      frames: s.frames.sort((a, b) => a.t - b.t),
    };
  });
}

function seeParent(seen: Map<string, Seen>, label: TaxonomyLabel, kind: Seen['kind'], t: number, confidence: number): void {
  const parent = label.parent!;
  const s = seen.get(parent);
  // One entry per frame for a parent: the best of its children there.
  const same = s?.frames.find((f) => f.t === t);
  if (same) {
    same.confidence = Math.max(same.confidence ?? 0, confidence);
    s!.best.set(t, Math.max(s!.best.get(t) ?? 0, confidence));
    return;
  }
  see(seen, parent, kind, { t, confidence });
}
