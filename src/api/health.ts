import type { HttpApp } from './http.js';

/** GET /health: 200 "OK" while the server accepts requests (503 once shutting down). */
export function registerHealth(app: HttpApp): void {
  app.get('/health', async (_req, reply) => {
    reply.type('text/plain; charset=utf-8');
    return 'OK';
  });
}
