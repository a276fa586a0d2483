// Finds the hello service wherever it runs and calls it.
import { createBus } from '@autobus/bus'

const bus = await createBus()
const hello = bus.singleServiceProxy({ type: 'hello' })
await hello.listen('greeted', (name) => console.log(`(event) greeted ${name}`))
console.log(await hello.call('hello', [process.argv[2] ?? 'world'], { timeout: 5_000 }))
await new Promise((resolve) => setTimeout(resolve, 100))
await bus.close()
