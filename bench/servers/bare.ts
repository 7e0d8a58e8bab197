// Bare Fastify: the baseline every other server is compared against.
import Fastify from 'fastify'
import { announce } from '../harness.js'

const app = Fastify({ logger: false })
app.get('/', async () => ({ hello: 'world' }))
await app.listen({ host: '127.0.0.1', port: 0 })
announce((app.server.address() as { port: number }).port)
