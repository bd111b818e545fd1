const GPS_IFD_POINTER = 0x8825;

/**
 * Whether an EXIF block (as sharp's metadata gives it: `Exif\0\0` + a TIFF structure) holds a
 * GPS directory with at least one entry. Reads only IFD0's entries; a malformed block is "no".
 */
export function exifHasGps(exif: Buffer | undefined): boolean {
  if (!exif || exif.length < 8) return false;
  const tiff = exif.subarray(0, 6).toString('latin1') === 'Exif\0\0' ? exif.subarray(6) : exif;
  if (tiff.length < 8) return false;
  const order = tiff.toString('latin1', 0, 2);
  if (order !== 'II' && order !== 'MM') return false;
  const le = order === 'II';
  const u16 = (o: number) => (le ? tiff.readUInt16LE(o) : tiff.readUInt16BE(o));
  const u32 = (o: number) => (le ? tiff.readUInt32LE(o) : tiff.readUInt32BE(o));
  if (u16(2) !== 42) return false;
  const ifd0 = u32(4);
  if (ifd0 + 2 > tiff.length) return false;
  const entries = u16(ifd0);
  for (let i = 0; i < entries; i++) {
    const at = ifd0 + 2 + i * 12;
    if (at + 12 > tiff.length) return false;
    if (u16(at) !== GPS_IFD_POINTER) continue;
    const gps = u32(at + 8);
    return gps + 2 <= tiff.length && u16(gps) > 0;
  }
  return false;
}

/** Whether an XMP packet names a GPS position (exif:GPSLatitude / GPSLongitude). */
export function xmpHasGps(xmp: string | undefined): boolean {
  return !!xmp && /GPS(Latitude|Longitude)/.test(xmp);
}
