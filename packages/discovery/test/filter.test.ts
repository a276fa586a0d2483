import { describe, expect, it } from 'vitest'
import {
  absent,
  matchesFilter,
  notEqual,
  oneOf,
  present,
  type ServiceFilter,
} from '../src/index.js'

describe('filters', () => {
  const info = { type: 'speaker', room: 'kitchen', volume: 3, tags: ['a', 'b'] }
  it('match equal, present, absent, not equal and one-of', () => {
    expect(matchesFilter(info, {})).toBe(true)
    expect(matchesFilter(info, { type: 'speaker' })).toBe(true)
    expect(matchesFilter(info, { type: 'light' })).toBe(false)
    expect(matchesFilter(info, { tags: ['a', 'b'] })).toBe(true)
    expect(matchesFilter(info, { room: present() })).toBe(true)
    expect(matchesFilter(info, { muted: present() })).toBe(false)
    expect(matchesFilter(info, { muted: absent() })).toBe(true)
    expect(matchesFilter(info, { room: absent() })).toBe(false)
    expect(matchesFilter(info, { room: notEqual('hall') })).toBe(true)
    expect(matchesFilter(info, { muted: notEqual(true) })).toBe(true)
    expect(matchesFilter(info, { room: notEqual('kitchen') })).toBe(false)
    expect(matchesFilter(info, { room: oneOf('hall', 'kitchen') })).toBe(true)
    expect(matchesFilter(info, { volume: oneOf(1, 2) })).toBe(false)
    expect(matchesFilter(info, { type: 'speaker', volume: 3, muted: absent() })).toBe(true)
  })
})

describe('filter types', () => {
  it('accept JSON values and matchers, and reject a misspelt matcher or a non-JSON value', () => {
    const good: ServiceFilter = {
      type: 'speaker',
      volume: 3,
      tags: ['a', { b: null }],
      room: oneOf('kitchen'),
      muted: absent(),
    }
    // @ts-expect-error a matcher's flag is `true`, not a string
    const misspelt: ServiceFilter = { name: { $present: 'yes' } }
    // @ts-expect-error a function is not a JSON value
    const notJson: ServiceFilter = { name: () => 1 }
    const info = { type: 'speaker', volume: 3, tags: ['a', { b: null }], room: 'kitchen' }
    expect(matchesFilter(info, good)).toBe(true)
    expect([misspelt, notJson]).toHaveLength(2)
  })
})
