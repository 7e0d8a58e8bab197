// The routes both Express session servers serve, so that they differ only in the session store.
import type { Express } from 'express'

declare module 'express-session' {
  interface SessionData { benchUser?: string, hits?: number }
}

export function expressSessionRoutes (app: Express): void {
  app.post('/login', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err !== undefined && err !== null) return next(err)
      req.session.benchUser = 'bench-user'
      req.session.hits = 0
      res.json({ ok: true })
    })
  })
  // Read-mostly: reads the session, never changes it.
  app.get('/read', (req, res) => { res.json({ user: req.session.benchUser ?? null, hits: req.session.hits ?? 0 }) })
  // Read-write: changes the session on every request.
  app.post('/write', (req, res) => {
    req.session.hits = (req.session.hits ?? 0) + 1
    res.json({ hits: req.session.hits })
  })
}
