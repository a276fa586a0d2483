/**
 * AES-128-GCM records sealed and opened in JavaScript with `node:crypto`,
 * shaped like TLS 1.3 application records (RFC 8446 §5.2: a 5-byte header
 * as associated data, the inner content type, a per-record nonce from a
 * sequence number). Only the security scenario uses it, to measure what
 * protecting records outside `node:tls` would cost at the very least: the
 * cipher work alone, none of the rest a record layer needs.
 */
import { createCipheriv, createDecipheriv, createHash, createSecretKey } from 'node:crypto'

const HEADER = 5
const TAG = 16
const APPLICATION_DATA = Buffer.from([0x17])

/** One direction's key and IV, from 32 bytes of key material and a direction label. */
function directionKey(material: Buffer, label: string) {
  const bytes = createHash('sha256').update(material).update(label).digest()
  return { key: createSecretKey(bytes.subarray(0, 16)), iv: bytes.subarray(16, 28) }
}

function nonce(iv: Buffer, sequence: number, into: Buffer): Buffer {
  iv.copy(into)
  into.writeUInt32BE((iv.readUInt32BE(4) ^ Math.floor(sequence / 2 ** 32)) >>> 0, 4)
  into.writeUInt32BE((iv.readUInt32BE(8) ^ sequence) >>> 0, 8)
  return into
}

/** A sealer for one direction and an opener for the other, with their sequence numbers. */
export function recordPair(material: Buffer, side: 'client' | 'server') {
  const send = directionKey(material, side === 'client' ? 'c' : 's')
  const receive = directionKey(material, side === 'client' ? 's' : 'c')
  let sent = 0
  let received = 0
  const sendNonce = Buffer.alloc(12)
  const receiveNonce = Buffer.alloc(12)
  let pending: Buffer = Buffer.alloc(0)
  return {
    seal(plain: Buffer): Buffer {
      const length = plain.byteLength + 1 + TAG
      const record = Buffer.allocUnsafe(HEADER + length)
      record.set([0x17, 3, 3, length >> 8, length & 0xff])
      const cipher = createCipheriv('aes-128-gcm', send.key, nonce(send.iv, sent++, sendNonce))
      cipher.setAAD(record.subarray(0, HEADER))
      let at = HEADER
      at += cipher.update(plain).copy(record, at)
      at += cipher.update(APPLICATION_DATA).copy(record, at)
      cipher.final()
      cipher.getAuthTag().copy(record, at)
      return record
    },
    /** Feeds received bytes; returns the plaintext of every whole record (throws on a bad tag). */
    open(chunk: Buffer): Buffer[] {
      pending = pending.byteLength ? Buffer.concat([pending, chunk]) : chunk
      const out: Buffer[] = []
      while (pending.byteLength >= HEADER) {
        const end = HEADER + pending.readUInt16BE(3)
        if (pending.byteLength < end) break
        const decipher = createDecipheriv(
          'aes-128-gcm',
          receive.key,
          nonce(receive.iv, received++, receiveNonce),
        )
        decipher.setAAD(pending.subarray(0, HEADER))
        decipher.setAuthTag(pending.subarray(end - TAG, end))
        const inner = decipher.update(pending.subarray(HEADER, end - TAG))
        decipher.final()
        out.push(inner.subarray(0, inner.byteLength - 1))
        pending = pending.subarray(end)
      }
      return out
    },
  }
}
