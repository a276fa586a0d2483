import type { DiscoveredService } from '@autobus/bus'

/** Writes one JSON line to standard output. */
export const line = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`)

/** The fields of a service that `--json` output prints. */
export function printableService(service: DiscoveredService) {
  return { host: service.host, port: service.port, service: service.service, info: service.info }
}

/** An info object without the keys every service has (they are printed apart). */
export function withoutAddressKeys(info: Readonly<Record<string, unknown>>) {
  const { host: _host, port: _port, service: _service, ...rest } = info
  return rest
}
