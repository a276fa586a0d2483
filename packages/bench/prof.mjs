import { once } from 'node:events'
import { createService, serve, connectService } from '@autobus/rpc'
const service = createService({})
service.addStream('sink', {}, (s) => { s.resume(); s.on('end', () => s.end()) })
const server = await serve([service], { host: '127.0.0.1' })
const c = await connectService({ host: '127.0.0.1', port: server.port, service: service.id })
const stream = await c.openStream('sink'); stream.resume()
const chunk = Buffer.alloc(64 * 1024, 1)
const t = performance.now()
for (let i = 0; i < 2048; i++) if (!stream.write(chunk)) await once(stream, 'drain')
stream.end(); await once(stream, 'end')
console.log('MB/s', 128 / ((performance.now() - t) / 1000))
await c.close(); await server.close()
