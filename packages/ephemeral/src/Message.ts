/**
 * The ephemeral message and its wire format (`README.md` gives it byte by byte):
 *
 * `PAYLOAD LENGTH (u16) | ID (64) | PAYLOAD (≤ 8192) | TTL (u32) | BLOCKHASH (4) | ALGORITHM (u8) | PROOF LENGTH (u8) | PROOF`
 *
 * Integers are big-endian. The payload's length leads the message (rather than sitting between ID and
 * PAYLOAD) so that ID ‖ PAYLOAD ‖ TTL ‖ BLOCKHASH, the input of the work digest, is one contiguous span
 * of the encoding: a validator hashes it in place, without a copy.
 *
 * Decoding checks every length before it reads, never copies (the fields are views of the input) and
 * never allocates in proportion to a length it has not checked; a short, oversized or over-long input
 * is a typed `EphemeralError`.
 */
import { Either } from "effect"
import { createHash, hash } from "node:crypto"
import { EphemeralError } from "./EphemeralError.js"

/** Length of a message id (ID0 ‖ ID1). */
export const idBytes = 64
/** Length of one id half. */
export const idHalfBytes = 32
/** Largest payload (a format bound: the wire cannot carry more). */
export const payloadBytesMax = 8192
/** Length of the block hash prefix. */
export const blockHashBytes = 4
/** Largest proof (a format bound of this version; the length byte could say up to 255). */
export const proofBytesMax = 64
/** Bytes of a message besides its payload and proof. */
export const fixedBytes = idBytes + 2 + 4 + blockHashBytes + 1 + 1
/** Largest encoded message. */
export const encodedBytesMax = fixedBytes + payloadBytesMax + proofBytesMax
/** Largest TTL (u32 unix seconds). */
export const ttlMax = 0xffff_ffff

/** An ephemeral message. */
export interface Message {
  /** 64 bytes: ID0 (the first 32) ‖ ID1; a unique nonce chosen by the sender. */
  readonly id: Uint8Array
  readonly payload: Uint8Array
  /** Expiry, unix seconds: the network deletes the message then. */
  readonly ttl: number
  /** The first 4 bytes of a recent block hash (a rough timestamp). */
  readonly blockHash: Uint8Array
  /** The proof-of-work algorithm byte (see `Pow.ts`). */
  readonly algorithm: number
  readonly proof: Uint8Array
}

/** A message before its proof of work. */
export type Unsealed = Omit<Message, "algorithm" | "proof">

/** ID0: the first half of the id, the key of prefix lookups. */
export const id0 = (message: Pick<Message, "id">): Uint8Array => message.id.subarray(0, idHalfBytes)

/** ID1: the second half of the id. */
export const id1 = (message: Pick<Message, "id">): Uint8Array => message.id.subarray(idHalfBytes, idBytes)

/** The id as hex (for people and logs). */
export const idHex = (message: Pick<Message, "id">): string => Buffer.from(message.id.buffer, message.id.byteOffset, message.id.byteLength).toString("hex")

// Buffer's own latin1 slicer reads a plain Uint8Array without wrapping it in a Buffer view first (the
// wrap costs more than the slice on the validation hot path).
const latin1Slice = (Buffer.prototype as unknown as { readonly latin1Slice?: (this: Uint8Array, start: number, end: number) => string }).latin1Slice

/** The id (or any bytes) as a compact map key, one char per byte. */
export const idKey = (id: Uint8Array): string =>
  latin1Slice !== undefined ? latin1Slice.call(id, 0, id.length) : Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString("latin1")

/** Encoded length of a message with this payload and proof. */
export const encodedLength = (payloadBytes: number, proofBytes: number): number => fixedBytes + payloadBytes + proofBytes

const fail = (reason: EphemeralError["reason"], detail: string) => Either.left(new EphemeralError({ reason, detail }))

/** Checks the fields the encoder cannot represent. */
const checkFields = (message: Message): EphemeralError | undefined => {
  const bad = (reason: EphemeralError["reason"], detail: string) => new EphemeralError({ reason, detail })
  if (message.id.length !== idBytes) return bad("BadField", `an id has ${idBytes} bytes, not ${message.id.length}`)
  if (message.payload.length > payloadBytesMax) return bad("PayloadTooLarge", `${message.payload.length} payload bytes, at most ${payloadBytesMax}`)
  if (!Number.isInteger(message.ttl) || message.ttl < 0 || message.ttl > ttlMax) return bad("BadField", `a TTL is a u32 of unix seconds, not ${message.ttl}`)
  if (message.blockHash.length !== blockHashBytes) return bad("BadField", `a block hash prefix has ${blockHashBytes} bytes, not ${message.blockHash.length}`)
  if (!Number.isInteger(message.algorithm) || message.algorithm < 0 || message.algorithm > 255) return bad("BadField", `an algorithm is one byte, not ${message.algorithm}`)
  if (message.proof.length > proofBytesMax) return bad("ProofTooLarge", `${message.proof.length} proof bytes, at most ${proofBytesMax}`)
  return undefined
}

/** Encodes a message; fails on a field the format cannot carry. */
export const encode = (message: Message): Either.Either<Uint8Array, EphemeralError> => {
  const bad = checkFields(message)
  if (bad !== undefined) return Either.left(bad)
  const length = message.payload.length
  const out = new Uint8Array(encodedLength(length, message.proof.length))
  const view = new DataView(out.buffer)
  view.setUint16(0, length)
  out.set(message.id, 2)
  out.set(message.payload, 2 + idBytes)
  let at = 2 + idBytes + length
  view.setUint32(at, message.ttl)
  out.set(message.blockHash, at + 4)
  at += 4 + blockHashBytes
  out[at] = message.algorithm
  out[at + 1] = message.proof.length
  out.set(message.proof, at + 2)
  return Either.right(out)
}

/** Decodes untrusted bytes; every field is a view of `bytes` (no copy). */
export const decode = (bytes: Uint8Array): Either.Either<Message, EphemeralError> => {
  if (bytes.length < 2) return fail("Truncated", "payload length")
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const length = view.getUint16(0)
  if (length > payloadBytesMax) return fail("PayloadTooLarge", `${length} payload bytes, at most ${payloadBytesMax}`)
  if (bytes.length < 2 + idBytes) return fail("Truncated", `id: ${Math.max(0, bytes.length - 2)} of ${idBytes} bytes`)
  let at = 2 + idBytes
  if (bytes.length < at + length) return fail("Truncated", `payload: ${bytes.length - at} of ${length} bytes`)
  const payload = bytes.subarray(at, at + length)
  at += length
  if (bytes.length < at + 4) return fail("Truncated", "ttl")
  const ttl = view.getUint32(at)
  at += 4
  if (bytes.length < at + blockHashBytes) return fail("Truncated", "block hash")
  const blockHash = bytes.subarray(at, at + blockHashBytes)
  at += blockHashBytes
  if (bytes.length < at + 2) return fail("Truncated", "proof-of-work algorithm and proof length")
  const algorithm = bytes[at]!
  const proofLength = bytes[at + 1]!
  at += 2
  if (proofLength > proofBytesMax) return fail("ProofTooLarge", `${proofLength} proof bytes, at most ${proofBytesMax}`)
  if (bytes.length < at + proofLength) return fail("Truncated", `proof: ${bytes.length - at} of ${proofLength} bytes`)
  const proof = bytes.subarray(at, at + proofLength)
  at += proofLength
  if (bytes.length !== at) return fail("TrailingBytes", `${bytes.length - at} bytes after the proof`)
  return Either.right({ id: bytes.subarray(2, 2 + idBytes), payload, ttl, blockHash, algorithm, proof })
}

/**
 * The digest the proof of work is done over: SHA-256(ID ‖ PAYLOAD ‖ TTL ‖ BLOCKHASH), TTL as u32
 * big-endian. Unambiguous without the payload length: ID and TTL ‖ BLOCKHASH have fixed sizes.
 */
export const workDigest = (message: Unsealed): Uint8Array => {
  const tail = new Uint8Array(4 + blockHashBytes)
  new DataView(tail.buffer).setUint32(0, message.ttl)
  tail.set(message.blockHash, 4)
  return new Uint8Array(createHash("sha256").update(message.id).update(message.payload).update(tail).digest())
}

/**
 * The same digest from a message's encoded bytes, for the validation hot path: the span it covers lies
 * contiguous in the encoding, so it is hashed in place. `encoded` must be the encoding of a decoded
 * message with this payload length.
 */
export const workDigestOfEncoded = (encoded: Uint8Array, payloadBytes: number): Uint8Array =>
  hash("sha256", encoded.subarray(2, 2 + idBytes + payloadBytes + 4 + blockHashBytes), "buffer")
