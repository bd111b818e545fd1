import { v7 as uuidv7 } from 'uuid';

/** Time-ordered ids (UUIDv7): unique across processes, index-friendly, safe as path segments. */
export function newId(): string {
  return uuidv7();
}

/** User ids come from key creation or an admin's header and become path segments. */
export const USER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
