import crypto, {
  createHmac,
  hkdfSync,
  randomBytes,
  randomFillSync,
  timingSafeEqual,
} from 'node:crypto'

/**
 * Bus keys, the key ring, key derivation and the sealed-datagram envelope.
 * docs/protocol.md §6 is the normative text; vectors are in
 * `vectors/security/`.
 */

/** The prefix of a key's text form: `autobus-key-1:<id>:<secret>`. */
export const KEY_PREFIX = 'autobus-key-1'

/** Bytes of a key's secret. */
export const KEY_SECRET_BYTES = 32

/** A key id: 1 to 12 letters, digits, `-` or `_` (it travels in every sealed datagram). */
const KEY_ID = /^[A-Za-z0-9_-]{1,12}$/

// HKDF-SHA256 labels: each use of the secret gets its own derived key, so a
// tag never doubles as a TLS key.
const SALT = Buffer.from('autobus', 'utf8')
const DISCOVERY_INFO = Buffer.from('autobus discovery v1', 'utf8')
const SESSION_INFO = Buffer.from('autobus session psk v1', 'utf8')

/** One bus key: its id and the keys derived from its secret. */
export interface BusKey {
  /** The key id: the PSK identity of sessions and the `kid` of sealed datagrams. */
  readonly id: string
  /** HMAC-SHA256 key of sealed datagrams (HKDF info "autobus discovery v1"). */
  readonly discoveryKey: Buffer
  /** TLS 1.3 pre-shared key of sessions (HKDF info "autobus session psk v1"). */
  readonly sessionKey: Buffer
  /** The key in its text form, as `autobus keygen` prints it. */
  readonly text: string
}

function derive(secret: Buffer, info: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, SALT, info, 32))
}

function makeKey(id: string, secret: Buffer): BusKey {
  return Object.freeze({
    id,
    discoveryKey: derive(secret, DISCOVERY_INFO),
    sessionKey: derive(secret, SESSION_INFO),
    text: `${KEY_PREFIX}:${id}:${secret.toString('base64url')}`,
  })
}

/**
 * Reads a key in its text form (`autobus-key-1:<id>:<secret>`, the secret
 * 32 bytes in unpadded base64url). Throws a `TypeError` saying what is wrong.
 */
export function parseKey(text: string): BusKey {
  const parts = text.trim().split(':')
  if (parts.length !== 3 || parts[0] !== KEY_PREFIX)
    throw new TypeError(`a bus key looks like "${KEY_PREFIX}:<id>:<secret>"`)
  const [, id, encoded] = parts as [string, string, string]
  if (!KEY_ID.test(id))
    throw new TypeError(`a key id is 1 to 12 letters, digits, "-" or "_", not "${id}"`)
  const secret = Buffer.from(encoded, 'base64url')
  if (secret.byteLength !== KEY_SECRET_BYTES || secret.toString('base64url') !== encoded)
    throw new TypeError(`the secret of key "${id}" is not ${KEY_SECRET_BYTES} bytes of base64url`)
  return makeKey(id, secret)
}

/** A new random key; the id is 8 random hex digits unless given. */
export function generateKey(id: string = randomBytes(4).toString('hex')): BusKey {
  if (!KEY_ID.test(id))
    throw new TypeError(`a key id is 1 to 12 letters, digits, "-" or "_", not "${id}"`)
  return makeKey(id, randomBytes(KEY_SECRET_BYTES))
}

/**
 * Reads one or more keys: separated by commas, white space or new lines
 * (the form of `AUTOBUS_KEY` and of a key file; `#` starts a comment line).
 */
export function parseKeys(text: string): BusKey[] {
  return text
    .split('\n')
    .filter((line) => !line.trim().startsWith('#'))
    .join('\n')
    .split(/[\s,]+/)
    .filter(Boolean)
    .map(parseKey)
}

/**
 * The keys a bus accepts, and the one it uses. Every key in the ring is
 * accepted (datagrams and sessions); only the current one signs datagrams
 * and opens sessions. Rolling a key across a running network is three
 * steps on every host: `install` the new key, then `use` it, then `remove`
 * the old one (docs/security.md).
 *
 * @example
 * ```ts
 * const ring = new KeyRing([parseKey(process.env.AUTOBUS_KEY!)])
 * ring.install(next)   // on every host
 * ring.use(next.id)    // on every host, once all have it
 * ring.remove(old.id)  // on every host, once all use the new one
 * ```
 */
export class KeyRing {
  readonly #keys = new Map<string, BusKey>()
  #current: BusKey

  /** The first key is the current one. */
  constructor(keys: Iterable<BusKey | string>) {
    for (const key of keys) this.install(key)
    const first = this.#keys.values().next().value
    if (!first) throw new TypeError('a key ring needs at least one key')
    this.#current = first
  }

  /** The key that signs and connects. */
  get current(): BusKey {
    return this.#current
  }

  /** The ids of every accepted key, the current one first. */
  get ids(): string[] {
    return [this.#current.id, ...[...this.#keys.keys()].filter((id) => id !== this.#current.id)]
  }

  /** The accepted key with this id, if any. */
  get(id: string): BusKey | undefined {
    return this.#keys.get(id)
  }

  /** Accepts one more key (text form or parsed); a key with the same id is replaced. */
  install(key: BusKey | string): BusKey {
    const parsed = typeof key === 'string' ? parseKey(key) : key
    this.#keys.set(parsed.id, parsed)
    if (this.#current?.id === parsed.id) this.#current = parsed
    return parsed
  }

  /** Signs and connects with an installed key from now on. */
  use(id: string): void {
    const key = this.#keys.get(id)
    if (!key) throw new TypeError(`key "${id}" is not installed`)
    this.#current = key
  }

  /** Stops accepting a key. The current key cannot be removed: `use` another first. */
  remove(id: string): boolean {
    if (id === this.#current.id)
      throw new TypeError(`key "${id}" is in use; use another key before removing it`)
    return this.#keys.delete(id)
  }
}

/** First two bytes of a sealed datagram; a JSON text never starts with them. */
export const SEAL_MAGIC = 0xab42
/** Envelope version. */
export const SEAL_VERSION = 1
const NONCE_BYTES = 8
const TAG_BYTES = 32

/** The parts of a sealed datagram, read before its tag is checked. */
export interface SealedParts {
  keyId: string
  /** Sender's time, ms since the epoch. */
  timestamp: number
  nonce: Buffer
  tag: Buffer
  /** The bytes the tag covers that come before it. */
  header: Buffer
  /** The datagram inside (JSON, as without a key). */
  payload: Buffer
}

/** True if these bytes start like a sealed datagram (and not like JSON). */
export function isSealed(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 2 && ((bytes[0]! << 8) | bytes[1]!) === SEAL_MAGIC
}

// Nonces come from a pool filled 512 at a time: one call into the random
// generator per datagram would cost more than the tag.
const noncePool = Buffer.alloc(NONCE_BYTES * 512)
let nonceOffset = noncePool.byteLength

function nextNonce(): Buffer {
  if (nonceOffset === noncePool.byteLength) {
    randomFillSync(noncePool)
    nonceOffset = 0
  }
  nonceOffset += NONCE_BYTES
  return noncePool.subarray(nonceOffset - NONCE_BYTES, nonceOffset)
}

// HMAC-SHA256 (RFC 2104) of the header and payload of a sealed datagram.
// `crypto.hash` (Node ≥ 20.12) is one call with no object to build, where
// `createHmac` builds a stream object per datagram, which costs more than
// the hashing itself for datagrams this small. The key's padded blocks are
// made once per key; a discovery key is 32 bytes, shorter than SHA-256's
// 64-byte block, so it is zero-padded as is (a longer key would be hashed
// first, and takes the `createHmac` path instead).
const oneShotHash = (crypto as { hash?: typeof crypto.hash }).hash
const BLOCK = 64

interface Tagger {
  /** ipad-keyed block, then room for the bytes to tag. */
  inner: Buffer
  /** opad-keyed block, then the inner digest. */
  outer: Buffer
}

const taggers = new WeakMap<Buffer, Tagger>()

function taggerOf(discoveryKey: Buffer): Tagger {
  let tagger = taggers.get(discoveryKey)
  if (!tagger) {
    const inner = Buffer.alloc(BLOCK + 1024)
    const outer = Buffer.alloc(BLOCK + TAG_BYTES)
    for (let i = 0; i < BLOCK; i++) {
      const byte = discoveryKey[i] ?? 0
      inner[i] = byte ^ 0x36
      outer[i] = byte ^ 0x5c
    }
    tagger = { inner, outer }
    taggers.set(discoveryKey, tagger)
  }
  return tagger
}

/** Writes HMAC-SHA256(key, header ‖ payload) into `out` at `offset`. */
function writeTag(
  key: Buffer,
  header: Uint8Array,
  payload: Uint8Array,
  out: Buffer,
  offset: number,
) {
  if (!oneShotHash || key.byteLength > BLOCK) {
    createHmac('sha256', key).update(header).update(payload).digest().copy(out, offset)
    return
  }
  const tagger = taggerOf(key)
  const length = BLOCK + header.byteLength + payload.byteLength
  if (tagger.inner.byteLength < length) {
    const grown = Buffer.alloc(Math.max(length, tagger.inner.byteLength * 2))
    tagger.inner.copy(grown, 0, 0, BLOCK)
    tagger.inner = grown
  }
  const { inner, outer } = tagger
  inner.set(header, BLOCK)
  inner.set(payload, BLOCK + header.byteLength)
  ;(oneShotHash('sha256', inner.subarray(0, length), 'buffer') as unknown as Buffer).copy(
    outer,
    BLOCK,
  )
  ;(oneShotHash('sha256', outer, 'buffer') as unknown as Buffer).copy(out, offset)
}

// Tags checked are computed here, not in a new buffer per datagram.
const expectedTag = Buffer.alloc(TAG_BYTES)
// The key id's bytes, per key, so sealing does not encode it each time.
const keyIdBytes = new WeakMap<BusKey, Buffer>()
const TWO_TO_32 = 2 ** 32

/**
 * Seals a datagram:
 * `magic(2) version(1) idLength(1) id timestamp(8, ms, big-endian) nonce(8) tag(32) payload`,
 * the tag HMAC-SHA256 (discovery key) over every byte before it and the payload.
 * At most 64 bytes are added (52 plus the key id).
 */
export function sealDatagram(
  payload: Uint8Array,
  key: BusKey,
  timestamp: number,
  nonce: Uint8Array = nextNonce(),
): Buffer {
  let id = keyIdBytes.get(key)
  if (!id) {
    id = Buffer.from(key.id, 'ascii')
    keyIdBytes.set(key, id)
  }
  const idLength = id.byteLength
  const headerLength = 4 + idLength + 8 + NONCE_BYTES
  const sealed = Buffer.allocUnsafe(headerLength + TAG_BYTES + payload.byteLength)
  sealed[0] = SEAL_MAGIC >> 8
  sealed[1] = SEAL_MAGIC & 0xff
  sealed[2] = SEAL_VERSION
  sealed[3] = idLength
  sealed.set(id, 4)
  // Two 32-bit halves: no BigInt per datagram.
  const ms = Math.floor(timestamp)
  sealed.writeUInt32BE(Math.floor(ms / TWO_TO_32), 4 + idLength)
  sealed.writeUInt32BE(ms % TWO_TO_32, 8 + idLength)
  sealed.set(nonce.subarray(0, NONCE_BYTES), 12 + idLength)
  sealed.set(payload, headerLength + TAG_BYTES)
  writeTag(key.discoveryKey, sealed.subarray(0, headerLength), payload, sealed, headerLength)
  return sealed
}

/** Reads a sealed datagram's parts; `undefined` if it is not one (or is cut short). */
export function readSealed(bytes: Uint8Array): SealedParts | undefined {
  const buffer = Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (!isSealed(buffer) || buffer.byteLength < 4) return undefined
  if (buffer[2] !== SEAL_VERSION) return undefined
  const idLength = buffer[3]!
  const headerLength = 4 + idLength + 8 + NONCE_BYTES
  if (idLength === 0 || buffer.byteLength < headerLength + TAG_BYTES) return undefined
  return {
    keyId: buffer.toString('ascii', 4, 4 + idLength),
    timestamp: buffer.readUInt32BE(4 + idLength) * TWO_TO_32 + buffer.readUInt32BE(8 + idLength),
    nonce: buffer.subarray(12 + idLength, headerLength),
    header: buffer.subarray(0, headerLength),
    tag: buffer.subarray(headerLength, headerLength + TAG_BYTES),
    payload: buffer.subarray(headerLength + TAG_BYTES),
  }
}

/** True if the tag of a sealed datagram is right for this key (compared in constant time). */
export function verifySealed(parts: SealedParts, key: BusKey): boolean {
  writeTag(key.discoveryKey, parts.header, parts.payload, expectedTag, 0)
  return parts.tag.byteLength === TAG_BYTES && timingSafeEqual(expectedTag, parts.tag)
}

/** TLS profile of keyed sessions (docs/protocol.md §6.4). */
export const SessionTls = {
  minVersion: 'TLSv1.3',
  maxVersion: 'TLSv1.3',
  /** The suite whose hash (SHA-256) the PSK is used with. */
  ciphers: 'TLS_AES_128_GCM_SHA256',
} as const

/**
 * `node:tls` options of a keyed session's client: TLS 1.3, the current
 * key's id as PSK identity and its session key as PSK; no certificate.
 */
export function tlsClientOptions(keys: KeyRing) {
  return {
    ...SessionTls,
    // There is no certificate: the PSK handshake itself proves the server holds the key.
    checkServerIdentity: () => undefined,
    pskCallback: () => ({ psk: keys.current.sessionKey, identity: keys.current.id }),
  }
}

/**
 * `node:tls` options of a keyed session's server: any key of the ring,
 * chosen by the client's PSK identity; `onIdentity` learns which. An
 * unknown identity ends the handshake.
 */
export function tlsServerOptions(keys: KeyRing, onIdentity?: (socket: object, id: string) => void) {
  return {
    ...SessionTls,
    pskCallback: (socket: object, identity: string) => {
      const key = keys.get(identity)
      if (!key) return null
      onIdentity?.(socket, identity)
      return key.sessionKey
    },
  }
}

/**
 * Certificates for sessions (mutual TLS) instead of the bus key's PSK:
 * this end's certificate and private key (PEM) and the authority (PEM)
 * that every peer's certificate must be signed by. A peer's identity is its
 * certificate's subject common name (`CN`).
 */
export interface SessionCertificate {
  cert: string | Buffer
  key: string | Buffer
  ca: string | Buffer
}

/** `node:tls` options of a client that presents a certificate (mutual TLS, TLS 1.3). */
export function tlsCertificateClientOptions(certificate: SessionCertificate) {
  return {
    minVersion: SessionTls.minVersion,
    cert: certificate.cert,
    key: certificate.key,
    ca: certificate.ca,
    // Services are reached by address, not by name: the chain to the
    // authority is what is checked, not the host name.
    checkServerIdentity: () => undefined,
  }
}

/** `node:tls` options of a server that requires a client certificate from the authority. */
export function tlsCertificateServerOptions(certificate: SessionCertificate) {
  return {
    minVersion: SessionTls.minVersion,
    cert: certificate.cert,
    key: certificate.key,
    ca: certificate.ca,
    requestCert: true,
    rejectUnauthorized: true,
  }
}
