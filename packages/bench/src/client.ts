/**
 * One benchmark client per process: `node client.js <system> <ready JSON>
 * <sequential count> <pipelined count> <warm-up count>`. Prints one JSON line
 * with the results. A process of its own keeps every system's client away
 * from the other client libraries and their timers and threads.
 */
import { rpcClient } from './clients.js'
import type { Ready, System } from './payload.js'
import { pipelined, sequential } from './scenarios.js'

const [system, readyText, seqText, pipeText, warmText] = process.argv.slice(2)
const client = await rpcClient(system as System, JSON.parse(readyText!) as Ready)
for (let i = 0; i < Number(warmText); i++) await client.call()
const seq = await sequential(client, Number(seqText))
const pipe = await pipelined(client, Number(pipeText), 64)
await client.close()
process.stdout.write(`${JSON.stringify({ ...seq, pipelined_calls_per_s: pipe.calls_per_s })}\n`)
process.exit(0)
