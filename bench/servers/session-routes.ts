// The routes both session bench servers serve, so that they differ only in the session store.
import type { FastifyInstance } from 'fastify'

declare module 'fastify' {
  interface Session { benchUser?: string, hits?: number }
}

export function sessionRoutes (app: FastifyInstance): void {
  app.post('/login', async (request) => {
    await request.session.regenerate()
    request.session.benchUser = 'bench-user'
    request.session.hits = 0
    return { ok: true }
  })
  // Read-mostly: reads the session, never changes it.
  app.get('/read', async (request) => ({ user: request.session.benchUser ?? null, hits: request.session.hits ?? 0 }))
  // Read-write: changes the session on every request.
  app.post('/write', async (request) => {
    request.session.hits = (request.session.hits ?? 0) + 1
    return { hits: request.session.hits }
  })
}
