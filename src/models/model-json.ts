/**
 * TensorFlow.js models built from bytes already read and checked (model-files.ts), never from a URL:
 * for the vision models' TF.js and for the copy bundled by @energetic-ai/core alike (types only here).
 */
import type { io } from '@tensorflow/tfjs';

/**
 * A loader that hands TensorFlow.js the model.json and weight shards given, in memory: what
 * tf.loadGraphModel and tf.loadLayersModel read instead of fetching files. `shard` returns the bytes
 * of each path the model's weightsManifest names.
 */
export function memoryIOHandler(modelJson: io.ModelJSON, shard: (name: string) => Uint8Array): io.IOHandler {
  return {
    load: async () => {
      const weightSpecs: io.WeightsManifestEntry[] = [];
      const parts: Uint8Array[] = [];
      for (const group of modelJson.weightsManifest ?? []) {
        weightSpecs.push(...group.weights);
        for (const name of group.paths) parts.push(shard(name));
      }
      const weightData = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
      let at = 0;
      for (const p of parts) {
        weightData.set(p, at);
        at += p.byteLength;
      }
      // Every field TensorFlow.js reads from a model.json; some graph models fail without `signature`.
      const artifacts: io.ModelArtifacts = {
        modelTopology: modelJson.modelTopology,
        weightSpecs,
        weightData: weightData.buffer,
        format: modelJson.format,
        generatedBy: modelJson.generatedBy,
        convertedBy: modelJson.convertedBy,
      };
      if (modelJson.signature != null) artifacts.signature = modelJson.signature;
      if (modelJson.userDefinedMetadata != null) artifacts.userDefinedMetadata = modelJson.userDefinedMetadata;
      if (modelJson.modelInitializer != null) artifacts.modelInitializer = modelJson.modelInitializer;
      if (modelJson.trainingConfig != null) artifacts.trainingConfig = modelJson.trainingConfig;
      return artifacts;
    },
  };
}
