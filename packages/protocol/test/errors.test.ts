import { describe, expect, it } from 'vitest'
import {
  type AutobusError,
  BusyError,
  ConnectionLostError,
  ErrorCode,
  errorFromWire,
  errorToWire,
  InvalidArgumentsError,
  PeerTimeoutError,
  ProtocolError,
  RefusedError,
  RemoteError,
  SlowConsumerError,
  UnknownNameError,
  UnknownServiceError,
} from '../src/index.js'

describe('wire errors', () => {
  it('map back to the same class', () => {
    const errors: AutobusError[] = [
      new UnknownServiceError('no service x'),
      new UnknownNameError('no function f'),
      new InvalidArgumentsError('bad'),
      new BusyError('busy'),
      new ConnectionLostError('gone'),
      new RefusedError('no'),
      new ProtocolError(ErrorCode.UnknownCommand, 'what'),
    ]
    for (const error of errors) {
      const back = errorFromWire(errorToWire(error))
      expect(back.constructor).toBe(error.constructor)
      expect(back.code).toBe(error.code)
      expect(back.message).toBe(error.message)
    }
  })

  it('read every wire code back as an error with that code, its name pinned on the class', () => {
    for (const code of Object.values(ErrorCode)) {
      const back = errorFromWire({ text: `about ${code}`, code })
      expect(back.code).toBe(code)
      expect(back.message).toBe(`about ${code}`)
      // The class's own name survives bundlers that rename classes, and a
      // check on `name` survives two copies of the package in one install.
      expect((back.constructor as { name: string }).name).toBe(back.name)
      const again = errorFromWire(errorToWire(back))
      expect(again.constructor).toBe(back.constructor)
      expect(again.code).toBe(code)
    }
  })

  it('send the local-only kinds under their wire code', () => {
    expect(errorFromWire(errorToWire(new SlowConsumerError('slow')))).toBeInstanceOf(BusyError)
    expect(errorFromWire(errorToWire(new PeerTimeoutError('silent')))).toBeInstanceOf(
      ConnectionLostError,
    )
    expect(errorFromWire({ text: 'x', code: 'no_such_code' })).toBeInstanceOf(RemoteError)
  })

  it('carry a thrown error as a RemoteError with its name and message', () => {
    const thrown = new TypeError('bad thing')
    const wire = errorToWire(thrown)
    expect(wire).toEqual({ text: 'bad thing', code: 'remote_error', name: 'TypeError' })
    const back = errorFromWire(wire)
    expect(back).toBeInstanceOf(RemoteError)
    expect((back as RemoteError).remoteName).toBe('TypeError')
    expect(errorToWire(thrown, { stack: true }).stack).toContain('bad thing')
  })

  it('read an original peer error (text only) as a RemoteError', () => {
    const back = errorFromWire({ text: 'No such function' })
    expect(back).toBeInstanceOf(RemoteError)
    expect(back.message).toBe('No such function')
  })
})
