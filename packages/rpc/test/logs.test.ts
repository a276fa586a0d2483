import type { Logger } from '@autobus/protocol'
import { createMemoryPair } from '@autobus/transport'
import Type from 'typebox'
import { describe, expect, it } from 'vitest'
import { bindService } from '../src/index.js'
import { RpcServer } from '../src/server.js'
import { calculator } from './fixture.js'

/** A logger that keeps every call, by level. */
function collecting() {
  const calls: Array<{ level: string; message: string; details: unknown[] }> = []
  const at =
    (level: string) =>
    (message: string, ...details: unknown[]) =>
      calls.push({ level, message, details })
  const logger: Logger = {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  }
  return { logger, calls }
}

async function served(logger: Logger, maxPendingCalls?: number) {
  const fixture = calculator()
  fixture.service.addFunction('reject', { args: [Type.String()] }, async (message) => {
    throw new TypeError(message)
  })
  const server = new RpcServer(undefined, { logger, maxPendingCalls })
  server.add(fixture.service)
  const [client, serverEnd] = createMemoryPair()
  server.accept(serverEnd)
  const connection = await bindService(client, fixture.service.id)
  return { ...fixture, server, connection }
}

describe('the service side log', () => {
  it('has every handler that throws or rejects as an error, with its name and the error', async () => {
    const { logger, calls } = collecting()
    const { connection, service } = await served(logger)
    await expect(connection.call('fail', ['it broke'])).rejects.toThrow('it broke')
    await expect(connection.call('reject', ['no way'])).rejects.toThrow('no way')
    expect(await connection.call('add', [1, 2])).toBe(3)
    const errors = calls.filter((call) => call.level === 'error')
    expect(errors).toHaveLength(2)
    expect(errors[0]!.message).toMatch(
      new RegExp(`^autobus:rpc function "fail" of service ${service.id} threw`),
    )
    expect(errors[0]!.details[0]).toMatchObject({ name: 'CustomError', message: 'it broke' })
    expect(errors[1]!.message).toMatch(/^autobus:rpc function "reject" of service/)
    expect(errors[1]!.details[0]).toBeInstanceOf(TypeError)
    await connection.close()
  })

  it('has a command answered busy as a warning naming the limit', async () => {
    const { logger, calls } = collecting()
    const { connection } = await served(logger, 1)
    const slow = connection.call('sleep', [30])
    await expect(connection.call('add', [1, 2])).rejects.toThrow(/already running/)
    await slow
    expect(calls).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        message: expect.stringMatching(/^autobus:rpc answered busy to "call" .*maxPendingCalls/),
      }),
    )
    await connection.close()
  })
})
