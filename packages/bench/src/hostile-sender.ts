/**
 * `node hostile-sender.js <port> <service> <frames>`: binds to a service,
 * prints {"bound": true}, waits for a line on stdin, then sends <frames>
 * frames of about 4 MB that nest two million levels deep (0: until stdin
 * ends), and prints {"sent", "tooDeep", "bytes"} once every frame sent has
 * been answered. A process of its own, so that pushing the bytes
 * does not slow the client that measures.
 */
import { once } from 'node:events'
import net from 'node:net'
import { createInterface } from 'node:readline'

const [portText, service, framesText] = process.argv.slice(2)
const limit = Number(framesText)
const half = 2_000_000
const frame = Buffer.from(
  `{"_type":1,"_id":1,"_command":"call","name":"echo","args":[${'['.repeat(half)}${']'.repeat(half)}]}\n`,
)
const socket = net.connect({ host: '127.0.0.1', port: Number(portText) })
socket.on('error', () => {})
await once(socket, 'connect')
let answers = 0
let tooDeep = 0
let waiter: { count: number; resolve: () => void } | undefined
createInterface({ input: socket }).on('line', (line) => {
  answers++
  if (line.includes('"too_deep"')) tooDeep++
  if (waiter && answers >= waiter.count) waiter.resolve()
})
const answered = (count: number) =>
  new Promise<void>((resolve) => {
    if (answers >= count) resolve()
    else waiter = { count, resolve }
  })
socket.write(`${JSON.stringify({ _type: 1, _id: 0, _command: 'bind', service })}\n`)
await answered(1)
process.stdout.write(`${JSON.stringify({ bound: true })}\n`)
let stop = false
const input = createInterface({ input: process.stdin })
input.on('close', () => {
  stop = true
})
await once(input, 'line')
let sent = 0
while (!stop && (limit === 0 || sent < limit)) {
  sent++
  if (!socket.write(frame)) await once(socket, 'drain')
}
await answered(1 + sent)
process.stdout.write(`${JSON.stringify({ sent, tooDeep, bytes: sent * frame.length })}\n`)
socket.destroy()
process.exit(0)
