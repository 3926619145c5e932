/**
 * A node ID is the SHA-256 of the node's ML-DSA-65 public key. Its one text form is the 32 bytes in
 * lowercase RFC 4648 base32 without padding (52 characters); `short` gives the first 10 for logs.
 * IDs are carried as branded strings so they can key maps and cross JSON untouched.
 */
import { Brand, Either, Schema } from "effect"
import { createHash } from "node:crypto"
import { IdentityError } from "./WeftError.js"

/** A node ID in its text form. */
export type NodeId = string & Brand.Brand<"NodeId">

const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
const textLength = 52
const byteLength = 32

/** The schema of a node ID's text form. */
export const NodeIdSchema = Schema.String.pipe(
  Schema.pattern(/^[a-z2-7]{52}$/),
  Schema.brand("NodeId")
)

/** Encodes 32 bytes as a node ID. */
export const fromBytes = (bytes: Uint8Array): NodeId => {
  if (bytes.length !== byteLength) throw new Error(`NodeId.fromBytes: expected 32 bytes, got ${bytes.length}`)
  let out = ""
  let buffer = 0
  let bits = 0
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += alphabet[(buffer >>> (bits - 5)) & 31]
      bits -= 5
    }
    buffer &= (1 << bits) - 1
  }
  if (bits > 0) out += alphabet[(buffer << (5 - bits)) & 31]
  return out as NodeId
}

/** Decodes a node ID back to its 32 bytes. */
export const toBytes = (id: NodeId): Uint8Array => {
  const out = new Uint8Array(byteLength)
  let buffer = 0
  let bits = 0
  let index = 0
  for (const char of id) {
    buffer = (buffer << 5) | alphabet.indexOf(char)
    bits += 5
    if (bits >= 8) {
      out[index++] = (buffer >>> (bits - 8)) & 0xff
      bits -= 8
      buffer &= (1 << bits) - 1
    }
  }
  return out
}

/** Parses untrusted text as a node ID. */
export const parse = (text: string): Either.Either<NodeId, IdentityError> => {
  if (text.length !== textLength || !/^[a-z2-7]+$/.test(text)) {
    return Either.left(new IdentityError({ reason: "BadNodeId", detail: `not a node ID: ${JSON.stringify(text.slice(0, 80))}` }))
  }
  const id = text as NodeId
  // The last character carries 2 padding bits, which must be zero for the text form to be unique.
  return fromBytes(toBytes(id)) === id
    ? Either.right(id)
    : Either.left(new IdentityError({ reason: "BadNodeId", detail: "non-canonical node ID" }))
}

/** The node ID of an ML-DSA-65 public key. */
export const fromPublicKey = (publicKey: Uint8Array): NodeId =>
  fromBytes(createHash("sha256").update(publicKey).digest())

/** The short form used in logs. */
export const short = (id: NodeId): string => id.slice(0, 10)
