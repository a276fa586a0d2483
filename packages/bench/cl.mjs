import { readFileSync } from 'node:fs'
import { once } from 'node:events'
import { connectService } from '@autobus/rpc'
const ready = JSON.parse(readFileSync('/tmp/srv.out', 'utf8').split('\n')[0])
const c = await connectService({ host: '127.0.0.1', port: ready.port, service: ready.service })
const stream = await c.openStream('sink'); stream.resume()
const chunk = Buffer.alloc(64 * 1024, 1)
const t = performance.now()
for (let i = 0; i < 4096; i++) if (!stream.write(chunk)) await once(stream, 'drain')
stream.end(); await once(stream, 'end')
console.log('MB/s', 256 / ((performance.now() - t) / 1000))
await c.close()
