/** The same ~100-byte JSON payload for every system. */
export const PAYLOAD = {
  id: 'sensor-42',
  kind: 'temperature',
  value: 21.5,
  unit: 'C',
  tags: ['hall', 'ground-floor'],
  ok: true,
}

/** Systems measured side by side. */
export type System = 'autobus' | 'moleculer' | 'zeromq' | 'nats' | 'raw'

/** What a server process prints once it is ready. */
export interface Ready {
  ready: true
  port: number
  service?: string
}
