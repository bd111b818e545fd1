import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * Playback tokens are bearer capabilities valid for hours: whoever reads a log line holding one can
 * play the media. They travel in request paths (`/play/<token>/…`) and may travel in a `token`
 * query parameter, and paths end up in more than the request log (error messages, "route not
 * found", "reply already sent"), so every finished log line is scrubbed, not only known fields.
 */
const PLAY_PATH = /(\/play\/)([^/\s"?#\\]+)/g;
const TOKEN_PARAM = /([?&][A-Za-z0-9_]*token=)[^&\s"#\\]+/gi;
/** A token anywhere else, as the playback routes shape them (`<media id>.<expiry>.<signature>`). */
const TOKEN = /\b([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.[0-9a-z]{1,12}\.[A-Za-z0-9_-]{43}/g;
const MEDIA_ID_PREFIX = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\./;
const CENSOR = '[redacted]';

/** The text with every playback token replaced; a token's media id is kept, as it grants nothing. */
export function redactTokens(text: string): string {
  return text
    .replace(PLAY_PATH, (_m, prefix: string, segment: string) => {
      const id = MEDIA_ID_PREFIX.exec(segment)?.[1];
      return `${prefix}${id ? `${id}.${CENSOR}` : CENSOR}`;
    })
    .replace(TOKEN_PARAM, `$1${CENSOR}`)
    .replace(TOKEN, `$1.${CENSOR}`);
}

type Destination = DestinationStream & { flush?(cb?: (err?: Error) => void): void };

/** A destination that writes each log line with its tokens redacted. */
function redactingStream(dest: Destination): Destination {
  return {
    write: (line: string) => dest.write(redactTokens(line)),
    flush: (cb) => (dest.flush ? dest.flush(cb) : cb?.()),
  };
}

export function createLogger(level: string, name = 'qasar', destination: Destination = pino.destination(1)): Logger {
  return pino({ name, level, redact: { paths: ['req.headers.authorization', 'headers.authorization'], censor: CENSOR } }, redactingStream(destination));
}
