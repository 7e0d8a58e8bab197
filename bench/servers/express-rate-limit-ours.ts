// This suite's Express rate limiter (`suite.rateLimit()`) on the route, with a limit no run
// reaches (every request is checked and counted; none is refused). KEY_HEADER=<name> counts each
// client by that request header instead of by IP.
import express from 'express'
import type { AddressInfo } from 'node:net'
import { redisSuite } from '../../express/index.js'
import { announce } from '../harness.js'

const header = process.env.KEY_HEADER
const suite = await redisSuite({
  redis: { url: process.env.REDIS_URL as string, prefix: 'bench' },
  cache: false,
  rateLimit: { rate: '1000000000/hour', key: header === undefined ? undefined : (req) => req.headers[header] as string }
})
const app = express()
app.get('/', suite.rateLimit(), (_req, res) => { res.json({ hello: 'world' }) })
const server = app.listen(0, '127.0.0.1', () => { announce((server.address() as AddressInfo).port) })
