import { startServer } from './dist/harness.js'
import { streamBench } from './dist/scenarios.js'
const a = await startServer('autobus'); const r = await startServer('raw-sink')
for (let i = 0; i < 3; i++) console.log(await streamBench(a, r, 128))
await a.stop(); await r.stop(); process.exit(0)
