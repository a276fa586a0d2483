import { parsePeerList } from '@autobus/discovery'
import { KeyRing, parseKeys } from '@autobus/protocol'
import type { BusOptions } from './bus.js'
import { stderrLogger } from './log.js'

function switchedOn(name: string, text: string): boolean {
  const value = text.trim().toLowerCase()
  if (['1', 'true', 'yes', 'on'].includes(value)) return true
  if (['0', 'false', 'no', 'off'].includes(value)) return false
  throw new TypeError(`${name} must be 1 or 0, not "${text}"`)
}

// The `debug` package's convention: a list of names, `*` a wildcard, a
// leading `-` leaving a name out.
function debugSelects(text: string): boolean {
  const names = text.split(/[\s,]+/).filter(Boolean)
  if (names.some((name) => /^-autobus(:\*)?$/.test(name))) return false
  return names.some((name) => name === '*' || /^autobus(:\*)?$/.test(name))
}

/**
 * The settings a bus reads from the environment, each the default of one
 * option, so every program on Autobus (the `autobus` command included) is
 * set up the same way from outside. An option given to `createBus` wins.
 */
const settings: ReadonlyArray<{
  name: string
  option: keyof BusOptions
  read(text: string): BusOptions
}> = [
  {
    name: 'AUTOBUS_DISCOVERY_PORT',
    option: 'discoveryPort',
    read(text) {
      const port = Number(text)
      if (!/^\d+$/.test(text.trim()) || port < 1 || port > 65535)
        throw new TypeError(`AUTOBUS_DISCOVERY_PORT must be a port number (1-65535), not "${text}"`)
      return { discoveryPort: port }
    },
  },
  {
    name: 'AUTOBUS_INTERFACES',
    option: 'interfaces',
    read(text) {
      const interfaces = text
        .split(',')
        .map((name) => name.trim())
        .filter(Boolean)
      return interfaces.length > 0 ? { interfaces } : {}
    },
  },
  {
    // Networks that drop broadcast: AUTOBUS_PEERS="10.0.0.5,host-b:52722".
    name: 'AUTOBUS_PEERS',
    option: 'peers',
    read: (text) => ({ peers: parsePeerList(text) }),
  },
  {
    // AUTOBUS_KEY="autobus-key-1:<id>:<secret>[,<next key>]": the first is used, all are accepted.
    name: 'AUTOBUS_KEY',
    option: 'key',
    read(text) {
      try {
        return { key: new KeyRing(parseKeys(text)) }
      } catch (error) {
        throw new TypeError(`AUTOBUS_KEY: ${(error as Error).message}`)
      }
    },
  },
  {
    // A JSON file of access rules, read again whenever it changes.
    name: 'AUTOBUS_ACCESS',
    option: 'access',
    read: (text) => ({ access: text.trim() }),
  },
  {
    // One line per event on stderr, prefixed autobus:<layer>.
    name: 'AUTOBUS_DEBUG',
    option: 'logger',
    read: (text) => (switchedOn('AUTOBUS_DEBUG', text) ? { logger: stderrLogger() } : {}),
  },
  {
    // The same, for those who already set DEBUG=autobus:* for the debug package.
    name: 'DEBUG',
    option: 'logger',
    read: (text) => (debugSelects(text) ? { logger: stderrLogger() } : {}),
  },
]

/**
 * `options` with what the environment sets where an option is not given
 * (absent or `undefined`). A setting that is set but empty counts as unset;
 * one that cannot be read, where it is read, is a `TypeError` naming it.
 */
export function withEnvironment(
  options: BusOptions,
  env: Readonly<Record<string, string | undefined>> = process.env,
): BusOptions {
  const merged: BusOptions = {}
  for (const { name, option, read } of settings) {
    const text = env[name]
    if (
      options[option] === undefined &&
      merged[option] === undefined &&
      text !== undefined &&
      text.trim() !== ''
    )
      Object.assign(merged, read(text))
  }
  for (const [key, value] of Object.entries(options))
    if (value !== undefined) Object.assign(merged, { [key]: value })
  return merged
}
