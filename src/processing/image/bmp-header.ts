export interface BmpHeader {
  width: number;
  height: number;
  bitsPerPixel: number;
}

/** The bytes parseBmpHeader needs from the start of a file. */
export const BMP_HEADER_BYTES = 30;

/**
 * Size and depth from a BMP's headers (BITMAPFILEHEADER + BITMAPCOREHEADER or a later
 * BITMAPINFOHEADER), or undefined when the bytes are not a BMP. A negative height means a
 * top-down bitmap; the size is its absolute value.
 */
export function parseBmpHeader(head: Buffer): BmpHeader | undefined {
  if (head.length < 26 || head.toString('latin1', 0, 2) !== 'BM') return undefined;
  const dibSize = head.readUInt32LE(14);
  if (dibSize === 12) {
    return { width: head.readUInt16LE(18), height: head.readUInt16LE(20), bitsPerPixel: head.length >= 26 ? head.readUInt16LE(24) : 0 };
  }
  if (dibSize < 40 || head.length < 30) return undefined;
  const width = head.readInt32LE(18);
  const height = Math.abs(head.readInt32LE(22));
  if (width <= 0 || height <= 0) return undefined;
  return { width, height, bitsPerPixel: head.readUInt16LE(28) };
}
