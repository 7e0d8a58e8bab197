// This suite's Express sessions (`suite.sessions.middleware`: express-session on the suite's
// Redis store), session defaults.
import express from 'express'
import type { AddressInfo } from 'node:net'
import { redisSuite } from '../../express/index.js'
import { announce } from '../harness.js'
import { expressSessionRoutes } from './express-session-routes.js'

const suite = await redisSuite({
  redis: { url: process.env.REDIS_URL as string, prefix: 'benchours' },
  cache: false,
  // Plain http on loopback: the production default (Secure) would keep the cookie from being sent.
  session: { secret: 'bench-secret-bench-secret-bench-secret', cookie: { secure: false }, userIdField: 'benchUser' }
})
const app = express()
app.use(suite.sessions.middleware)
expressSessionRoutes(app)
const server = app.listen(0, '127.0.0.1', () => { announce((server.address() as AddressInfo).port) })
