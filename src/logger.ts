import { pino, type Logger } from 'pino';

export function createLogger(level: string, name = 'qasar'): Logger {
  return pino({ name, level, redact: { paths: ['req.headers.authorization', 'headers.authorization'], censor: '[redacted]' } });
}
