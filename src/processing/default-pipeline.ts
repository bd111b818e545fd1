import type { SpeechModels } from './labeling/speech.js';
import { Pipeline } from './pipeline.js';

/**
 * Qasar's processing steps. Each module that does the work (and sharp, with its libvips) is
 * loaded by the first job that needs it, so an API process never loads any.
 */
export function defaultPipeline(): Pipeline {
  return new Pipeline()
    .register({
      name: 'video',
      kinds: ['video'],
      stage: 'main',
      needs: ['media'],
      publishes: ['dash', 'hls', 'thumbnails', 'posters'],
      run: async (c) => (await import('./steps/video-step.js')).runVideoStep(c.deps, c.media, c.publishes),
    })
    .register({
      name: 'webm',
      kinds: ['video'],
      stage: 'follow-up',
      needs: ['media'],
      publishes: ['webm'],
      scratch: 'webm',
      enabled: (s) => s.enableWebm,
      run: async (c) => (await import('./steps/webm-step.js')).runWebmStep(c.deps, c.media, c.job, c.publishes),
    })
    .register({
      name: 'audio',
      kinds: ['audio'],
      stage: 'main',
      needs: ['media'],
      publishes: ['webm', 'hls', 'posters', 'thumbnails'],
      run: async (c) => (await import('./steps/audio-step.js')).runAudioStep(c.deps, c.media, c.publishes),
    })
    .register({
      name: 'image',
      kinds: ['image'],
      stage: 'main',
      needs: ['media'],
      publishes: ['webp', 'thumbnails', 'posters'],
      run: async (c) => (await import('./steps/image-step.js')).runImageStep(c.deps, c.media, c.publishes),
    })
    .register({
      name: 'document',
      kinds: ['document'],
      stage: 'main',
      needs: ['media'],
      publishes: ['thumbnails', 'posters'],
      run: async (c) => (await import('./steps/document-step.js')).runDocumentStep(c.deps, c.media, c.publishes),
    })
    .register({
      name: 'labels',
      kinds: ['video', 'image', 'document'],
      stage: 'follow-up',
      needs: ['media', 'thumbnails', 'posters'],
      publishes: [],
      scratch: 'labels',
      moderates: true,
      enabled: (s) => s.enableWorkerLabeling,
      run: async (c) => {
        if (!c.deps.models) throw new Error('labeling is on but this worker has no model host');
        await (await import('./steps/labels-step.js')).runLabelsStep(c.deps, c.media, c.job, c.deps.models);
      },
    })
    .register({
      name: 'transcript',
      kinds: ['video', 'audio'],
      stage: 'follow-up',
      needs: ['media'],
      publishes: [],
      scratch: 'transcript',
      enabled: (s) => s.enableTranscripts,
      run: async (c) => {
        const models = c.deps.models;
        if (!models?.speech || !models.transcribe) throw new Error('transcripts are on but this worker has no speech models');
        await (await import('./steps/transcript-step.js')).runTranscriptStep(c.deps, c.media, c.job, models as typeof models & SpeechModels);
      },
    });
}
