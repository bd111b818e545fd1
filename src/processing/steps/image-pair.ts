/** A picture offered as JPEG and/or WebP (poster, cover), or nothing when neither was made. */
export function imagePair(jpeg: string | undefined, webp: string | undefined): { jpeg?: string; webp?: string } | undefined {
  if (!jpeg && !webp) return undefined;
  return { ...(jpeg ? { jpeg } : {}), ...(webp ? { webp } : {}) };
}
