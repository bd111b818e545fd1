import type { Settings } from '../config/settings.js';
import type { MediaKind } from '../db/schema.js';
import type { Job } from '../queue/queue.js';
import { MEDIA_FOLDERS, type MediaFolder } from '../storage/layout.js';
import type { MediaToProcess } from './media-to-process.js';
import type { ScratchOwner } from '../storage/scratch.js';
import type { StepDeps } from './steps/scratch-step.js';

/** What a step is given for one run. */
export interface StepContext {
  /** The database, media store, settings and listeners; `pending` lists the kind's follow-ups to come. */
  deps: StepDeps<Settings>;
  media: MediaToProcess;
  job: Job;
  /** The folders the step declared: the only ones it publishes. */
  publishes: readonly MediaFolder[];
}

/**
 * One step of a media kind's processing.
 *
 * - `main` steps run in the order registered, in the media's processing job, while it is
 *   `processing`; the media is ready when the last one is done.
 * - `follow-up` steps run once the media is ready, each as its own job (`follow-up`, keyed
 *   `<name>:<media id>`), in the follow-up worker slots: slow renditions (WebM), labeling,
 *   transcripts. While one is to come its name is listed in file_metadata.pending.
 *
 * Steps must be idempotent (an attempt repeated after a crash is safe) and throw
 * PermanentJobError for input no retry can fix. The module that does the work is best
 * imported inside `run`, so processes that never run the step never load it.
 */
export interface ProcessingStep {
  /** Unique among the steps; lower-case letters, digits and dashes. */
  readonly name: string;
  readonly kinds: readonly MediaKind[];
  readonly stage: 'main' | 'follow-up';
  /**
   * The folders the step reads: `media` (the original) or folders an earlier main step of the
   * same kinds publishes. A setting may leave such a folder out: the step copes.
   */
  readonly needs: readonly MediaFolder[];
  /** The folders the step publishes (replacing the previous version); no two steps of a kind share one. */
  readonly publishes: readonly MediaFolder[];
  /** Whose scratch folders it makes (`media` unless said): a follow-up that will not run removes its own. */
  readonly scratch?: ScratchOwner;
  /**
   * A follow-up whose labels decide the media's moderation: while it is to come, a media that
   * became ready is moderation state `pending` (seen by its owner and admins only), and the step
   * publishes or holds it when done.
   */
  readonly moderates?: boolean;
  /** Whether a follow-up is queued with these settings (always, unless said). */
  enabled?(settings: Settings): boolean;
  run(ctx: StepContext): Promise<void>;
}

const STEP_NAME = /^[a-z][a-z0-9-]{0,39}$/;

/**
 * The processing of every media kind, as declared steps. The worker runs a kind's main steps
 * in its processing job and queues its follow-ups once the media is ready. Adding a step is one
 * `register` call (see default-pipeline.ts); registering checks what the step needs is published
 * before it, and that no two steps of a kind publish the same folder.
 */
export class Pipeline {
  private readonly steps: ProcessingStep[] = [];

  register(step: ProcessingStep): this {
    const problem = this.problemWith(step);
    if (problem) throw new Error(`processing step ${JSON.stringify(step.name)}: ${problem}`);
    this.steps.push(step);
    return this;
  }

  private problemWith(step: ProcessingStep): string | undefined {
    // `media:<id>` is the processing job's dedupe key.
    if (!STEP_NAME.test(step.name) || step.name === 'media') return 'the name must be lower-case letters, digits and dashes (and not "media")';
    if (this.step(step.name)) return 'a step of that name is registered already';
    if (!step.kinds.length) return 'it names no media kind';
    for (const folder of [...step.needs, ...step.publishes]) {
      if (!(MEDIA_FOLDERS as readonly string[]).includes(folder)) return `${folder} is not a media folder`;
    }
    if (step.publishes.includes('media')) return 'no step replaces the original (media/)';
    for (const kind of step.kinds) {
      const earlier = this.steps.filter((s) => s.kinds.includes(kind));
      const clash = earlier.find((s) => s.publishes.some((f) => step.publishes.includes(f)));
      if (clash) return `it publishes a folder step ${clash.name} publishes for ${kind}`;
      const before = earlier.filter((s) => s.stage === 'main');
      const missing = step.needs.find((f) => f !== 'media' && !before.some((s) => s.publishes.includes(f)));
      if (missing) return `it needs ${missing}/, which no main step of ${kind} before it publishes`;
    }
    return undefined;
  }

  step(name: string): ProcessingStep | undefined {
    return this.steps.find((s) => s.name === name);
  }

  /** The main steps of a kind, in order. */
  mainSteps(kind: MediaKind): ProcessingStep[] {
    return this.steps.filter((s) => s.stage === 'main' && s.kinds.includes(kind));
  }

  /** The follow-ups of a kind: those these settings turn on, or all of them. */
  followUps(kind: MediaKind, settings?: Settings): ProcessingStep[] {
    return this.steps.filter((s) => s.stage === 'follow-up' && s.kinds.includes(kind) && (!settings || (s.enabled?.(settings) ?? true)));
  }
}
