import { fileURLToPath } from 'node:url'
import { type Bus, createBus } from '@autobus/bus'
import { killAll, runToExit } from '@autobus/testkit'
import { afterEach, describe, expect, it } from 'vitest'

// How the CLI ends when something is wrong or goes away: the built binary,
// in its own process, on a discovery port and interface of this suite's own.
const main = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const collectGarbage = fileURLToPath(new URL('./fixtures/collect-garbage.mjs', import.meta.url))
const timeWaits = fileURLToPath(new URL('./fixtures/time-waits.mjs', import.meta.url))
const env = {
  ...process.env,
  AUTOBUS_DISCOVERY_PORT: String(20_000 + ((process.pid + 29) % 20_000)),
  AUTOBUS_INTERFACES: 'lo',
  NO_COLOR: '1',
}
const buses: Bus[] = []
afterEach(async () => {
  killAll()
  await Promise.all(buses.splice(0).map((bus) => bus.close()))
})

/** Runs the CLI; stdin stays open unless `input` is given. */
function cli(args: string[], options: { input?: string; nodeArgs?: string[] } = {}) {
  const run = runToExit(process.execPath, [...(options.nodeArgs ?? []), main, ...args], {
    env,
    input: options.input ?? { open: true },
  })
  return { ...run, ended: run.exited }
}

async function example(name: string) {
  const started = cli(['example', '--json', '--name', name])
  const ready = JSON.parse(await started.firstLine()) as { port: number; service: string }
  return { ...started, ready, direct: `127.0.0.1:${ready.port}/${ready.service}` }
}

describe('autobus CLI when a name is wrong', () => {
  it('fails at once with the same message and code for a filter and an address target', async () => {
    const a = await example('typo')
    const cases = [
      ['watch', 'countr', 'object'],
      ['listen', 'tickd', 'event'],
    ] as const
    const runs = cases.flatMap(([command, name]) => [
      cli([command, 'name=typo', name]).ended,
      cli([command, a.direct, name]).ended,
    ])
    const ended = await Promise.all(runs)
    cases.forEach(([, name, kind], i) => {
      const message = `error: service ${a.ready.service} has no ${kind} "${name}"\n`
      expect(ended[2 * i]).toMatchObject({ code: 1, stdout: '', stderr: message })
      expect(ended[2 * i + 1]).toMatchObject({ code: 1, stdout: '', stderr: message })
    })
  })
})

/** A service whose channel `bye` greets, then closes, and `stay` greets and stays open. */
async function channelService() {
  const bus = await createBus({ discovery: false, host: '127.0.0.1' })
  buses.push(bus)
  const service = bus.createService({ info: { type: 'test.channels' } })
  service.addChannel('bye', {}, (channel) => {
    channel.send({ hello: true })
    channel.close('goodbye')
  })
  service.addChannel('stay', {}, (channel) => channel.send({ hello: true }))
  bus.publish(service)
  return { bus, direct: `127.0.0.1:${bus.port}/${service.id}` }
}

describe('autobus channel', () => {
  it('prints the greeting and exits 0 at once when the service closes the channel', async () => {
    const { direct } = await channelService()
    // stdin stays open: the CLI must not wait for it to end.
    const ended = await cli(['channel', direct, 'bye']).ended
    expect(ended).toMatchObject({
      code: 0,
      stdout: '{"hello":true}\n',
      stderr: 'channel closed: goodbye\n',
    })
  })

  it('exits 3 at once when the connection drops', async () => {
    const { bus, direct } = await channelService()
    const run = cli(['channel', direct, 'stay'])
    expect(await run.firstLine()).toBe('{"hello":true}')
    await bus.close('service stopped')
    const ended = await run.ended
    expect(ended.code).toBe(3)
    expect(ended.stderr).toMatch(/^connection closed: .+\n$/)
  })
})

describe('autobus --wait under forced garbage collection', () => {
  // Two buses start in the child before the 3 s wait: a loaded machine is slow at that.
  it('gives up on `call type=nothing add 1 2 --wait 3` after 3 s, as a plain 3 s timer fires', async () => {
    const nodeArgs = ['--expose-gc', '--import', collectGarbage, '--import', timeWaits]
    const ended = await cli(['call', 'type=nothing', 'add', '1', '2', '--wait', '3'], {
      nodeArgs,
      input: '',
    }).ended
    expect(ended.code).toBe(3)
    const [, waited, error] = /^\[wait (\d+)\]\n(.*\n)$/.exec(ended.stderr) ?? []
    expect(error).toBe('error: no service matching {"type":"nothing"} bound within 3000 ms\n')
    // On time: no `[late]` before the wait's own line (see time-waits.mjs).
    expect(Number(waited)).toBeGreaterThanOrEqual(3_000)
  }, 60_000)
})
