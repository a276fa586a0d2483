import { describe, expect, it } from 'vitest'
import {
  type AutobusError,
  BusyError,
  ConnectionLostError,
  ErrorCode,
  errorFromWire,
  errorToWire,
  InvalidArgumentsError,
  ProtocolError,
  RefusedError,
  RemoteError,
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
