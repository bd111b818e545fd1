/** A stretch of a sound file, in seconds from its start. */
export interface TimeSpan {
  start: number;
  end: number;
}

/**
 * What the transcript step asks of the local speech models (see src/models/model-host.ts): where
 * speech is (voice activity), and its words, read only inside those stretches (on anything else
 * every Whisper makes text up).
 */
export interface SpeechModels {
  speech(pcmFile: string): Promise<{ segments: TimeSpan[]; duration: number }>;
  transcribe(
    pcmFile: string,
    opts: { windows: TimeSpan[]; model: 'base' | 'small'; language?: string },
  ): Promise<{ cues: Array<TimeSpan & { text: string }>; language: string | null; timedOut: TimeSpan[] }>;
}
