import { collectingLogger } from '@autobus/testkit'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createDiscoverer, createPublisher } from '../src/index.js'
import { MemoryNetwork } from './memory-network.js'

let network: MemoryNetwork
beforeEach(() => {
  vi.useFakeTimers({ now: 0 })
  network = new MemoryNetwork()
})
afterEach(() => {
  vi.useRealTimers()
})

const add = (service: string, port = 4000) =>
  JSON.stringify({ command: 'add', port, service, info: { type: 'x' } })
const remove = (service: string, port = 4000) =>
  JSON.stringify({ command: 'remove', port, service })

describe('the discovery log', () => {
  it('has services appearing and disappearing with the cause, and what was dropped and why', async () => {
    const { logger, lines } = collectingLogger()
    const discoverer = await createDiscoverer({
      network: network.host('10.0.0.1'),
      probe: async () => true,
      logger,
    })
    network.inject(add('speaker'), '10.0.0.2', 40_500)
    network.inject('{"command":"add"', '10.0.0.3', 40_501)
    network.inject(remove('speaker'), '10.0.0.66', 52_722)
    network.inject(remove('speaker'), '10.0.0.2', 40_500)
    expect(lines).toEqual([
      expect.stringMatching(
        /^info autobus:discovery appeared \(new\): speaker at 10\.0\.0\.2:4000/,
      ),
      expect.stringMatching(/^warn autobus:discovery dropped a datagram from 10\.0\.0\.3:40501: /),
      expect.stringMatching(
        /^warn autobus:discovery ignored a remove of speaker from 10\.0\.0\.66/,
      ),
      expect.stringMatching(
        /^info autobus:discovery disappeared \(goodbye\): speaker at 10\.0\.0\.2:4000/,
      ),
    ])
    await discoverer.close()
  })

  it('has a conflict over a published id as a warning', async () => {
    const { logger, lines } = collectingLogger()
    const publisher = await createPublisher({
      network: network.host('10.0.0.1'),
      holdOff: 0,
      logger,
    })
    publisher.publish({ service: 'mine', port: 4000, info: {} })
    network.inject(add('mine', 5000), '10.0.0.9', 40_000)
    expect(lines).toContainEqual(
      expect.stringMatching(/^warn autobus:discovery 10\.0\.0\.9 sent add for our mine/),
    )
    const closing = publisher.close()
    await vi.advanceTimersByTimeAsync(1_000)
    await closing
  })
})
