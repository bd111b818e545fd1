/**
 * Demuxers ffmpeg/ffprobe may open on an uploaded file. Playlists (hls, dash), concat lists,
 * image2 sequences, subtitles and other formats that can name further files or URLs are
 * absent on purpose, and only the `file` protocol is allowed.
 */
export const UPLOAD_DEMUXERS = [
  'mov,mp4,m4a,3gp,3g2,mj2',
  'matroska,webm',
  'avi',
  'flv',
  'mpegts',
  'mpeg',
  'mpegvideo',
  'm4v',
  'h264',
  'hevc',
  'asf',
  'mxf',
  'dv',
  'ivf',
  'nut',
  'rm',
  'gif',
  'mp3',
  'aac',
  'ac3',
  'eac3',
  'dts',
  'flac',
  'ogg',
  'wav',
  'w64',
  'aiff',
  'caf',
  'amr',
  'au',
  'wv',
  'ape',
  'mpc',
  'mpc8',
  'tta',
  'voc',
] as const;

/** Input options every ffmpeg/ffprobe run on an upload starts with. */
export function hardenedInputArgs(): string[] {
  return ['-protocol_whitelist', 'file', '-format_whitelist', UPLOAD_DEMUXERS.join(',')];
}
