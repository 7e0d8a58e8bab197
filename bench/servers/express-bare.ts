// Bare Express 5: the baseline of the Express benchmark, the same JSON body as every route.
import express from 'express'
import type { AddressInfo } from 'node:net'
import { announce } from '../harness.js'

const app = express()
app.get('/', (_req, res) => { res.json({ hello: 'world' }) })
const server = app.listen(0, '127.0.0.1', () => { announce((server.address() as AddressInfo).port) })
