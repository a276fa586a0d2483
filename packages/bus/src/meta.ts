import { META_SERVICE_ID, META_SERVICE_TYPE, UnknownServiceError } from '@autobus/protocol'
import { type AccessControl, type CallContext, createService, type Service } from '@autobus/rpc'
import Type from 'typebox'
import type { BusMetrics } from './metrics.js'

/** Options of {@link createMetaService}. */
export interface MetaServiceOptions {
  /** Access rules: each asker sees only the services they allow it to list and describe. */
  access?: AccessControl
  /**
   * False when the services are not announced (discovery off): with access
   * rules, they are then listed only to askers a rule names explicitly,
   * never by the default.
   */
  announced?: boolean
  /** The bus's figures, served as the `stats` function. */
  metrics?: () => BusMetrics
}

/**
 * The `autobus` meta-service every bus serves under the well-known id
 * "autobus": knowing a bus's host and port is enough to list and describe
 * its services (those the asker may see, when the bus has access rules).
 */
export function createMetaService(
  services: () => Iterable<Service>,
  options: MetaServiceOptions = {},
): Service {
  const { access, announced = true, metrics } = options
  const meta = createService({
    id: META_SERVICE_ID,
    info: { type: META_SERVICE_TYPE },
    doc: 'Lists and describes the services of this bus.',
  })
  const may = (service: Service, context: CallContext, action: 'list' | 'describe') => {
    if (!access) return true
    const request = { asker: context.peer, action, service }
    // A service that is not announced is not revealed by a default.
    if (!announced && !access.allowsExplicitly({ ...request, action: 'list' })) return false
    return access.allows(request)
  }
  const visible = (context: CallContext, action: 'list' | 'describe') =>
    [...services()].filter((service) => may(service, context, action))
  const find = (id: string, context: CallContext) => {
    for (const service of visible(context, 'describe')) if (service.id === id) return service
    throw new UnknownServiceError(`no service "${id}" on this bus`)
  }
  meta.addFunction(
    'list_services',
    { doc: 'The services of this bus: their ids, info objects and docs.', args: [] },
    (context) =>
      visible(context, 'list').map((service) => ({
        service: service.id,
        info: service.info,
        doc: service.doc ?? null,
      })),
  )
  meta.addFunction(
    'describe',
    { doc: 'The full description of one service of this bus.', args: [Type.String()] },
    (id, context) => find(id, context).describe(),
  )
  meta.addFunction(
    'describe_all',
    { doc: 'The descriptions of every service of this bus.', args: [] },
    (context) => visible(context, 'describe').map((service) => service.describe()),
  )
  if (metrics)
    meta.addFunction(
      'stats',
      {
        doc: "This bus's figures: per function calls, errors, refusals and latency; per event fires; per object changes; channels and streams; sessions; discovery; security.",
        args: [],
      },
      () => metrics(),
    )
  return meta
}
