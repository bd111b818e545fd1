/**
 * How the models' classes become labels: readable names, each under a parent in the style of
 * Rekognition's two-level taxonomy. The parents are COCO's own super-categories for objects, and
 * Explicit and Suggestive for nsfwjs's classes. The hierarchy reaches the label dictionary as two
 * global label banks (see modelBanks), which a tenant may override with banks of the same name.
 */

/** COCO-SSD's 80 classes (as the model names them) → label and parent. */
const OBJECTS: Readonly<Record<string, readonly [label: string, parent: string | null]>> = {
  person: ['Person', null],
  bicycle: ['Bicycle', 'Vehicle'],
  car: ['Car', 'Vehicle'],
  motorcycle: ['Motorcycle', 'Vehicle'],
  airplane: ['Airplane', 'Vehicle'],
  bus: ['Bus', 'Vehicle'],
  train: ['Train', 'Vehicle'],
  truck: ['Truck', 'Vehicle'],
  boat: ['Boat', 'Vehicle'],
  'traffic light': ['Traffic Light', 'Street Object'],
  'fire hydrant': ['Fire Hydrant', 'Street Object'],
  'stop sign': ['Stop Sign', 'Street Object'],
  'parking meter': ['Parking Meter', 'Street Object'],
  bench: ['Bench', 'Street Object'],
  bird: ['Bird', 'Animal'],
  cat: ['Cat', 'Animal'],
  dog: ['Dog', 'Animal'],
  horse: ['Horse', 'Animal'],
  sheep: ['Sheep', 'Animal'],
  cow: ['Cow', 'Animal'],
  elephant: ['Elephant', 'Animal'],
  bear: ['Bear', 'Animal'],
  zebra: ['Zebra', 'Animal'],
  giraffe: ['Giraffe', 'Animal'],
  backpack: ['Backpack', 'Accessory'],
  umbrella: ['Umbrella', 'Accessory'],
  handbag: ['Handbag', 'Accessory'],
  tie: ['Tie', 'Accessory'],
  suitcase: ['Suitcase', 'Accessory'],
  frisbee: ['Frisbee', 'Sports Equipment'],
  skis: ['Skis', 'Sports Equipment'],
  snowboard: ['Snowboard', 'Sports Equipment'],
  'sports ball': ['Ball', 'Sports Equipment'],
  kite: ['Kite', 'Sports Equipment'],
  'baseball bat': ['Baseball Bat', 'Sports Equipment'],
  'baseball glove': ['Baseball Glove', 'Sports Equipment'],
  skateboard: ['Skateboard', 'Sports Equipment'],
  surfboard: ['Surfboard', 'Sports Equipment'],
  'tennis racket': ['Tennis Racket', 'Sports Equipment'],
  bottle: ['Bottle', 'Tableware'],
  'wine glass': ['Wine Glass', 'Tableware'],
  cup: ['Cup', 'Tableware'],
  fork: ['Fork', 'Tableware'],
  knife: ['Knife', 'Tableware'],
  spoon: ['Spoon', 'Tableware'],
  bowl: ['Bowl', 'Tableware'],
  banana: ['Banana', 'Food'],
  apple: ['Apple', 'Food'],
  sandwich: ['Sandwich', 'Food'],
  orange: ['Orange', 'Food'],
  broccoli: ['Broccoli', 'Food'],
  carrot: ['Carrot', 'Food'],
  'hot dog': ['Hot Dog', 'Food'],
  pizza: ['Pizza', 'Food'],
  donut: ['Donut', 'Food'],
  cake: ['Cake', 'Food'],
  chair: ['Chair', 'Furniture'],
  couch: ['Couch', 'Furniture'],
  'potted plant': ['Potted Plant', 'Furniture'],
  bed: ['Bed', 'Furniture'],
  'dining table': ['Dining Table', 'Furniture'],
  toilet: ['Toilet', 'Furniture'],
  tv: ['Television', 'Electronics'],
  laptop: ['Laptop', 'Electronics'],
  mouse: ['Computer Mouse', 'Electronics'],
  remote: ['Remote Control', 'Electronics'],
  keyboard: ['Keyboard', 'Electronics'],
  'cell phone': ['Mobile Phone', 'Electronics'],
  microwave: ['Microwave', 'Appliance'],
  oven: ['Oven', 'Appliance'],
  toaster: ['Toaster', 'Appliance'],
  sink: ['Sink', 'Appliance'],
  refrigerator: ['Refrigerator', 'Appliance'],
  book: ['Book', 'Household Item'],
  clock: ['Clock', 'Household Item'],
  vase: ['Vase', 'Household Item'],
  scissors: ['Scissors', 'Household Item'],
  'teddy bear': ['Teddy Bear', 'Household Item'],
  'hair drier': ['Hair Dryer', 'Household Item'],
  toothbrush: ['Toothbrush', 'Household Item'],
};

/** nsfwjs's classes that are moderation labels (Neutral and Drawing are not) → label and parent. */
const MODERATION: Readonly<Record<string, readonly [label: string, parent: string]>> = {
  Porn: ['Porn', 'Explicit'],
  Hentai: ['Hentai', 'Explicit'],
  Sexy: ['Sexy', 'Suggestive'],
};

export interface TaxonomyLabel {
  label: string;
  parent: string | null;
}

/** The label of a COCO class, or undefined for a class this table does not know. */
export function objectLabel(cls: string): TaxonomyLabel | undefined {
  const hit = OBJECTS[cls];
  return hit ? { label: hit[0], parent: hit[1] } : undefined;
}

/** The moderation label of an nsfwjs class, or undefined for Neutral and Drawing. */
export function moderationLabel(cls: string): TaxonomyLabel | undefined {
  const hit = MODERATION[cls];
  return hit ? { label: hit[0], parent: hit[1] } : undefined;
}

export interface ModelBank {
  name: string;
  kind: 'general' | 'moderation';
  description: string;
  entries: Array<{ name: string; parent: string | null }>;
}

function entriesOf(table: Readonly<Record<string, readonly [string, string | null]>>): ModelBank['entries'] {
  const parents = [...new Set(Object.values(table).flatMap(([, p]) => (p ? [p] : [])))].sort();
  return [...parents.map((name) => ({ name, parent: null })), ...Object.values(table).map(([name, parent]) => ({ name, parent }))];
}

/** The two global banks that give the models' labels their parents. */
export function modelBanks(): ModelBank[] {
  return [
    {
      name: 'model-objects',
      kind: 'general',
      description: 'What the object detector (COCO-SSD) names, under COCO’s categories. Override it with a bank of this name.',
      entries: entriesOf(OBJECTS),
    },
    {
      name: 'model-moderation',
      kind: 'moderation',
      description: 'What the sexual-content classifier (nsfwjs) names, as Explicit and Suggestive. Override it with a bank of this name.',
      entries: entriesOf(MODERATION),
    },
  ];
}
