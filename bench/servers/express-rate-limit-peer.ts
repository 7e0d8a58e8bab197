// The peer: express-rate-limit with rate-limit-redis on an ioredis client (its `call` as the
// store's sendCommand), the same limit as the suite's server, and the same headers (the IETF
// draft's RateLimit and RateLimit-Policy). KEY_HEADER as in express-rate-limit-ours.
import express from 'express'
import type { RequestHandler } from 'express'
import { Redis } from 'ioredis'
import type { AddressInfo } from 'node:net'
import { announce, peer } from '../harness.js'

const { rateLimit } = peer<{ rateLimit: (options: object) => RequestHandler }>('express-rate-limit')
const { RedisStore } = peer<{ RedisStore: new (options: { sendCommand: (...args: string[]) => Promise<unknown>, prefix?: string }) => object }>('rate-limit-redis')

const redis = new Redis(process.env.REDIS_URL as string, { connectTimeout: 500, maxRetriesPerRequest: 1 })
const header = process.env.KEY_HEADER
const app = express()
app.get('/', rateLimit({
  windowMs: 60 * 60 * 1000,
  limit: 1_000_000_000,
  standardHeaders: 'draft-8',
  legacyHeaders: false,
  store: new RedisStore({ sendCommand: (command: string, ...args: string[]) => redis.call(command, ...args), prefix: 'bench-peer:' }),
  ...(header === undefined ? {} : { keyGenerator: (req: express.Request) => req.headers[header] as string })
}), (_req, res) => { res.json({ hello: 'world' }) })
const server = app.listen(0, '127.0.0.1', () => { announce((server.address() as AddressInfo).port) })
