/** What other parts of the server use of labels: writing them, and reading the hierarchy for search and feeds. */
export { labelIdsMatchingTerm, labelWithAncestors, syncLabelHierarchy, type LabelRef } from './hierarchy.js';
export { assetLabelsOf, recomputeEntryStats, writeAssetLabels, type AssetLabelDetail, type LabelFrame, type LabelInput, type LabelSource } from './asset-labels.js';
export { MediaLabelService, type LabelActor, type SystemActor } from './media-labels.js';
export { LabelBankService } from './label-bank-service.js';
export { effectiveBanks } from './effective-banks.js';
export { labelsOfMedia, normalizeLabelName } from './label-service.js';
