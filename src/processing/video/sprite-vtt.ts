function timestamp(seconds: number): string {
  const ms = Math.round(seconds * 1000);
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor(ms / 60_000) % 60;
  const s = Math.floor(ms / 1000) % 60;
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(h)}:${pad(m)}:${pad(s)}.${pad(ms % 1000, 3)}`;
}

/**
 * A WebVTT thumbnails track for scrubbing previews: cue i covers the i-th slice of the
 * duration and points at its cell of the sprite (`sprite.jpg#xywh=x,y,w,h`), matching the
 * frames the sprite was tiled from (the centre of each slice).
 */
export function spriteVtt(o: { duration: number; count: number; cols: number; width: number; height: number; image: string }): string {
  const lines = ['WEBVTT', ''];
  const slice = o.duration / o.count;
  for (let i = 0; i < o.count; i++) {
    const x = (i % o.cols) * o.width;
    const y = Math.floor(i / o.cols) * o.height;
    lines.push(`${timestamp(i * slice)} --> ${timestamp((i + 1) * slice)}`, `${o.image}#xywh=${x},${y},${o.width},${o.height}`, '');
  }
  return lines.join('\n');
}
