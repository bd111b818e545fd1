import type { MediaKind } from '../db/schema.js';

/** The media row a processing step works on. */
export interface MediaToProcess {
  id: string;
  tenant_id: string;
  user_id: string;
  kind: MediaKind;
  status: string;
}
