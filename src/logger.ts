import type { FastifyServerOptions } from 'fastify';
import type { Config } from './config/schema';

/**
 * pino options: one line per request is written by app.ts (onResponse); request and response
 * objects are never serialized whole, so no header (Authorization, Cookie) can reach the log.
 */
export function loggerOptions(config: Config): FastifyServerOptions['logger'] {
  return {
    level: config.log.level,
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers.cookie', 'password', '*.password', 'body.password', '*.body.password', 'csrf', '*.csrf'],
      censor: '[redacted]',
    },
    serializers: {
      req: (req: { method?: string; url?: string }) => ({ method: req.method, url: req.url }),
      res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
    },
  };
}
