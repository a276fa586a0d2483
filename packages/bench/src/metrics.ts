import { connectService, createService, serve } from '@autobus/rpc'
import type { RpcClient } from './clients.js'
import { median } from './harness.js'
import { PAYLOAD } from './payload.js'
import { pipelined } from './scenarios.js'

/**
 * Pipelined calls (64 in flight) to two copies of the same echo service on
 * one server, one counting and timing its calls and one not, in alternating
 * order each round: the ratio is what always-on metrics cost.
 */
export async function metricsOverhead(rounds: number, count: number) {
  const on = createService({ info: { type: 'bench.metrics.on' } })
  const off = createService({ info: { type: 'bench.metrics.off' }, metrics: false })
  for (const service of [on, off])
    service.addFunction('echo', { doc: 'Returns its argument.' }, (value: unknown) => value)
  const server = await serve([on, off], { port: 0, host: '127.0.0.1' })
  const client = async (id: string): Promise<RpcClient & { id: string }> => {
    const connection = await connectService({ host: '127.0.0.1', port: server.port, service: id })
    return {
      id,
      call: () => connection.call('echo', [PAYLOAD]),
      close: async () => {
        await connection.close()
      },
    }
  }
  const clients = { on: await client(on.id), off: await client(off.id) }
  const rates = { on: [] as number[], off: [] as number[] }
  try {
    await pipelined(clients.on, Math.min(count, 2_000))
    await pipelined(clients.off, Math.min(count, 2_000))
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)
      for (const which of order)
        rates[which].push((await pipelined(clients[which], count)).calls_per_s)
    }
  } finally {
    await clients.on.close()
    await clients.off.close()
    await server.close()
  }
  return {
    metrics_on_calls_per_s: median(rates.on),
    metrics_off_calls_per_s: median(rates.off),
  }
}
