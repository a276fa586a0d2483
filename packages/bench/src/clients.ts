import net from 'node:net'
import { connectService } from '@autobus/rpc'
import { JoinedWriter } from './joined-writer.js'
import { PAYLOAD, type Ready, type System } from './payload.js'

/** A client that sends one request and awaits its response. */
export interface RpcClient {
  call(): Promise<unknown>
  close(): Promise<void>
}

/**
 * A newline-JSON client over a raw socket: the floor with no library at
 * all, joining its writes per turn of the event loop as the transport does.
 */
export class RawClient implements RpcClient {
  readonly socket: net.Socket
  readonly #out: JoinedWriter
  #pending = new Map<number, (value: unknown) => void>()
  #nextId = 1
  #buffer = ''
  onEvent: ((event: unknown) => void) | undefined

  private constructor(socket: net.Socket) {
    this.socket = socket
    this.#out = new JoinedWriter(socket)
    socket.setNoDelay(true)
    socket.setEncoding('utf8')
    socket.on('data', (text: string) => {
      this.#buffer += text
      let end = this.#buffer.indexOf('\n')
      while (end >= 0) {
        const message = JSON.parse(this.#buffer.slice(0, end))
        this.#buffer = this.#buffer.slice(end + 1)
        if (message.event) this.onEvent?.(message)
        else {
          this.#pending.get(message.id)?.(message.result)
          this.#pending.delete(message.id)
        }
        end = this.#buffer.indexOf('\n')
      }
    })
  }

  static async connect(port: number): Promise<RawClient> {
    const socket = net.connect({ host: '127.0.0.1', port })
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject))
    return new RawClient(socket)
  }

  request(op: string, body: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.#nextId++
    return new Promise((resolve) => {
      this.#pending.set(id, resolve)
      this.#out.write(`${JSON.stringify({ id, op, ...body })}\n`)
    })
  }

  send(op: string, body: Record<string, unknown> = {}): void {
    this.#out.write(`${JSON.stringify({ op, ...body })}\n`)
  }

  call(): Promise<unknown> {
    return this.request('echo', { payload: PAYLOAD })
  }

  async close(): Promise<void> {
    this.socket.destroy()
  }
}

export async function autobusClient(ready: Ready): Promise<RpcClient> {
  const connection = await connectService({
    host: '127.0.0.1',
    port: ready.port,
    service: ready.service!,
  })
  return {
    call: () => connection.call('echo', [PAYLOAD]),
    close: async () => {
      await connection.close()
    },
  }
}

/**
 * A Moleculer node with the TCP transporter and UDP discovery off. Node
 * `bench-client` listens on the server's port + 1, `bench-sub-<i>` on
 * port + 2 + i: the server lists them all.
 */
export async function moleculerClient(
  ready: Ready,
  subscriber?: number,
  onTick?: () => void,
): Promise<RpcClient & { broker: any }> {
  const { ServiceBroker } = (await import('moleculer')).default
  const nodeID = subscriber === undefined ? 'bench-client' : `bench-sub-${subscriber}`
  const port = ready.port + (subscriber === undefined ? 1 : 2 + subscriber)
  const broker = new ServiceBroker({
    nodeID,
    logger: false,
    transporter: {
      type: 'TCP',
      options: { udpDiscovery: false, port, urls: [`127.0.0.1:${ready.port}/bench-server`] },
    },
  })
  // Registered before start, so the server knows of it from the first INFO.
  if (onTick) broker.createService({ name: `sub${subscriber}`, events: { 'bench.tick': onTick } })
  await broker.start()
  await broker.waitForServices('bench', 10_000)
  return {
    broker,
    call: () => broker.call('bench.echo', { payload: PAYLOAD }),
    close: () => broker.stop(),
  }
}

export async function zeromqClient(ready: Ready): Promise<RpcClient> {
  const zmq = await import('zeromq')
  const dealer = new zmq.Dealer()
  dealer.connect(`tcp://127.0.0.1:${ready.port}`)
  const pending = new Map<number, (value: unknown) => void>()
  let nextId = 1
  let closed = false
  void (async () => {
    try {
      for await (const [message] of dealer) {
        const response = JSON.parse(message!.toString())
        pending.get(response.id)?.(response.result)
        pending.delete(response.id)
      }
    } catch (error) {
      if (!closed) throw error
    }
  })()
  return {
    call: () => {
      const id = nextId++
      return new Promise((resolve) => {
        pending.set(id, resolve)
        void dealer.send(JSON.stringify({ id, payload: PAYLOAD }))
      })
    },
    close: async () => {
      closed = true
      dealer.close()
    },
  }
}

export async function natsClient(ready: Ready): Promise<RpcClient> {
  const { connect, JSONCodec } = await import('nats')
  const connection = await connect({ servers: `127.0.0.1:${ready.port}` })
  const codec = JSONCodec()
  return {
    call: async () =>
      (
        codec.decode(
          (
            await connection.request('bench.echo', codec.encode({ payload: PAYLOAD }), {
              timeout: 10_000,
            })
          ).data,
        ) as any
      ).result,
    close: () => connection.close(),
  }
}

export async function rpcClient(system: System, ready: Ready): Promise<RpcClient> {
  switch (system) {
    case 'autobus':
      return autobusClient(ready)
    case 'raw':
      return RawClient.connect(ready.port)
    case 'moleculer':
      return moleculerClient(ready)
    case 'zeromq':
      return zeromqClient(ready)
    case 'nats':
      return natsClient(ready)
  }
}
