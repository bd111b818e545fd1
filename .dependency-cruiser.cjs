// Layering of src/: `npm run lint:layers` (part of `npm run lint` and `npm run check`).
// Reasons: docs/decisions.md ("Layers of src/").

/**
 * The folders of src/, lowest layer first. A folder may import its own layer and the layers below it,
 * never one above. Type-only imports count too: a type imported from above is the same coupling.
 */
const LAYERS = [
  ['config', 'shared'],
  ['db', 'storage', 'queue', 'events', 'cache', 'tools', 'models'],
  ['tenancy', 'access'],
  ['labels'],
  ['moderation'],
  ['media'],
  ['search'],
  ['feeds', 'recommendations'],
  ['uploads', 'processing'],
  ['http'],
  ['cli'],
];

const folders = (names) => `^src/(${names.join('|')})/`;
/** Files directly in src/ are composition (they move into folders): the cli layer, which only cli imports. */
const ROOT_FILE = '^src/[^/]+$';

const layerRules = LAYERS.slice(0, -1).map((names, i) => ({
  name: `layer-${names.join('-')}`,
  comment: `${names.join(', ')} may import only ${LAYERS.slice(0, i + 1)
    .flat()
    .join(', ')} (lower layers and its own)`,
  severity: 'error',
  from: { path: folders(names) },
  to: { path: [folders(LAYERS.slice(i + 1).flat()), ROOT_FILE] },
}));

const KNOWN = [...LAYERS.flat().map((n) => `^src/${n}/`), ROOT_FILE];

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'layer-unknown-folder',
      comment: 'every folder of src/ belongs to a layer: add a new folder to LAYERS in .dependency-cruiser.cjs',
      severity: 'error',
      from: { path: '^src/', pathNot: KNOWN },
      to: {},
    },
    {
      name: 'layer-unknown-folder-imported',
      comment: 'every folder of src/ belongs to a layer: add a new folder to LAYERS in .dependency-cruiser.cjs',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^src/', pathNot: KNOWN },
    },
    {
      name: 'no-circular',
      comment: 'no import cycles (type-only imports included)',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'no-test-from-src',
      comment: 'the server never imports test or benchmark code',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'an import that resolves to nothing',
      severity: 'error',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports (`import type`, `import { type X }`) are dependencies too.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['main', 'types', 'typings'],
    },
    skipAnalysisNotInRules: true,
  },
};
