import pino, { type DestinationStream, type Logger } from 'pino';

/** Paths whose values never reach the logs. */
const REDACT = [
  'req.headers.authorization',
  'headers.authorization',
  '*.password',
  '*.new_password',
  '*.access_token',
  '*.refresh_token',
  '*.token',
  '*.seed',
  'password',
  'access_token',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      name: 'myelin',
      level,
      redact: { paths: REDACT, censor: '[redacted]' },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

/** Strips credentials from a URL's query before it is logged. */
export function safeUrl(url: string): string {
  return url.replace(/([?&](access_token|token|password)=)[^&]*/gi, '$1[redacted]');
}

export type { Logger };
