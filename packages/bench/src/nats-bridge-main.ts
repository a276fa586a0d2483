/**
 * Only the NATS bridge part of `pnpm bench`:
 * `node --expose-gc packages/bench/dist/nats-bridge-main.js [--smoke] [--rounds N]`.
 * Prints one JSON line with the same keys as the `nats-bridge` result.
 */
import { natsBridgeBench } from './nats-bridge.js'

const argv = process.argv.slice(2)
const smoke = argv.includes('--smoke')
const at = argv.indexOf('--rounds')
const rounds = at >= 0 ? Number(argv[at + 1]) : smoke ? 1 : 5
process.stdout.write(`${JSON.stringify(await natsBridgeBench({ smoke, rounds }))}\n`)
process.exit(0)
