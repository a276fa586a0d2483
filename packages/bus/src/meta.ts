import { META_SERVICE_ID, META_SERVICE_TYPE, UnknownServiceError } from '@autobus/protocol'
import { createService, type Service } from '@autobus/rpc'
import Type from 'typebox'
import type { BusMetrics } from './metrics.js'

/**
 * The `autobus` meta-service every bus serves under the well-known id
 * "autobus": knowing a bus's host and port is enough to list and describe
 * its services.
 */
export function createMetaService(
  services: () => Iterable<Service>,
  metrics?: () => BusMetrics,
): Service {
  const meta = createService({
    id: META_SERVICE_ID,
    info: { type: META_SERVICE_TYPE },
    doc: 'Lists and describes the services of this bus.',
  })
  const find = (id: string) => {
    for (const service of services()) if (service.id === id) return service
    throw new UnknownServiceError(`no service "${id}" on this bus`)
  }
  meta.addFunction(
    'list_services',
    { doc: 'The services of this bus: their ids, info objects and docs.', args: [] },
    () =>
      [...services()].map((service) => ({
        service: service.id,
        info: service.info,
        doc: service.doc ?? null,
      })),
  )
  meta.addFunction(
    'describe',
    { doc: 'The full description of one service of this bus.', args: [Type.String()] },
    (id) => find(id).describe(),
  )
  meta.addFunction(
    'describe_all',
    { doc: 'The descriptions of every service of this bus.', args: [] },
    () => [...services()].map((service) => service.describe()),
  )
  if (metrics)
    meta.addFunction(
      'stats',
      {
        doc: "This bus's figures: per function calls, errors and latency; per event fires; per object changes; sessions.",
        args: [],
      },
      () => metrics(),
    )
  return meta
}
