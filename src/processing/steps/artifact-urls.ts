import type { ArtifactPaths } from '../../media/delivery.js';

type UrlTree<T> = T extends string ? string : T extends Array<infer U> ? Array<UrlTree<U>> : T extends object ? { [K in keyof T]: UrlTree<T[K]> } : T;

function mapStrings<T>(value: T, f: (s: string) => string): UrlTree<T> {
  if (typeof value === 'string') return f(value) as UrlTree<T>;
  if (Array.isArray(value)) return value.map((v) => mapStrings(v, f)) as UrlTree<T>;
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapStrings(v, f)])) as UrlTree<T>;
  }
  return value as UrlTree<T>;
}

/** API URLs of a media's artifacts (for clients that hold a key), in the same shape as the paths. */
export function artifactApiUrls(prefix: string, mediaId: string, artifacts: ArtifactPaths): UrlTree<ArtifactPaths> {
  return mapStrings(artifacts, (p) => `${prefix}/media/${mediaId}/files/${p}`);
}

/** A picture offered as JPEG and/or WebP (poster, cover), or nothing when neither was made. */
export function imagePair(jpeg: string | undefined, webp: string | undefined): { jpeg?: string; webp?: string } | undefined {
  if (!jpeg && !webp) return undefined;
  return { ...(jpeg ? { jpeg } : {}), ...(webp ? { webp } : {}) };
}
