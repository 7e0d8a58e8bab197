// The peer: express-session with connect-redis on a node-redis client, configured as
// express-session recommends and matched to ours: 1 day idle timeout renewed on every request
// (connect-redis's touch), no resave of an unchanged session, saveUninitialized off.
import express from 'express'
import type { RequestHandler } from 'express'
import type { AddressInfo } from 'node:net'
import { announce, peer } from '../harness.js'
import { expressSessionRoutes } from './express-session-routes.js'

interface RedisClient { connect: () => Promise<unknown>, quit: () => Promise<unknown> }
const { createClient } = peer<{ createClient: (options: { url: string }) => RedisClient }>('redis')
const { RedisStore } = peer<{ RedisStore: new (options: { client: RedisClient, prefix?: string }) => object }>('connect-redis')
// The express-session that connect-redis extends (its peer, installed beside it).
const session = peer<(options: object) => RequestHandler>('express-session')

const client = createClient({ url: process.env.REDIS_URL as string })
await client.connect()
const app = express()
app.use(session({
  store: new RedisStore({ client, prefix: 'benchpeer:' }),
  secret: 'bench-secret-bench-secret-bench-secret',
  cookie: { secure: false, maxAge: 86_400_000, httpOnly: true, sameSite: 'lax' },
  resave: false,
  saveUninitialized: false
}))
expressSessionRoutes(app)
const server = app.listen(0, '127.0.0.1', () => { announce((server.address() as AddressInfo).port) })
