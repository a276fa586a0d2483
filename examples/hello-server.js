// A hello service: run it, then run hello-client.js on any host of the network.
import { createBus, Type } from '@autobus/bus'

const bus = await createBus()
const service = bus.createService({ info: { type: 'hello' }, doc: 'Says hello.' })
const greeted = service.addEvent('greeted', { doc: 'Someone was greeted.', args: [Type.String()] })
service.addFunction('hello', { doc: 'Greets someone.', args: [Type.String()] }, (name) => {
  greeted.fire(name)
  return `Hello, ${name}!`
})
const publication = bus.publish(service)
await publication.announced
console.log(`hello service ${service.id} on port ${bus.port}; Ctrl-C to stop`)

process.once('SIGINT', async () => {
  await bus.close() // sends goodbyes
  process.exit(0)
})
