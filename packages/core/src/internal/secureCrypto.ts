/**
 * The secure link's cryptography, as plain functions over buffers (the per-cell path must not pay for
 * an Effect): HKDF, the two cell seals, the replay window, and the X-Wing hybrid KEM.
 *
 * Every cell is exactly `cellBytes` (C) long and carries an *inner cell* of `C - 32` bytes (a
 * `fragment.ts` cell: frame id, index, count, length, payload, zero padding), so kinds and lengths are
 * only ever inside a ciphertext.
 *
 * Handshake cell, sealed under the network PSK:
 *
 * | offset | size | field |
 * |---|---|---|
 * | 0 | 16 | salt, fresh random per cell |
 * | 16 | C − 32 | AES-256-GCM ciphertext of the inner cell; key ‖ nonce = HKDF-SHA256(psk, salt, "weft-link-secure-v1 cell", 44); AAD = salt |
 * | C − 16 | 16 | GCM tag |
 *
 * Data cell, sealed under the session's keys for one direction (key, iv, hp):
 *
 * | offset | size | field |
 * |---|---|---|
 * | 0 | 16 | protected header: AES-256-ECB(hp, pn as u64 big-endian ‖ 8 zero bytes) |
 * | 16 | C − 32 | AES-256-GCM ciphertext of the inner cell; nonce = iv XOR (0⁴ ‖ pn); AAD = the protected header |
 * | C − 16 | 16 | GCM tag |
 *
 * The packet number is unique per key, so the ECB input never repeats and the header is a fresh
 * pseudo-random block each time: no byte position is constant. The eight zero bytes are a check a
 * receiver reads after removing the protection, so it learns with one block decryption (from a cipher
 * object it keeps, no per-cell setup) which of its key sets a cell belongs to, or that it belongs to
 * none, before paying for an AEAD open.
 */
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js"
import type { Cipher, Decipher, KeyObject } from "node:crypto"
import {
  createCipheriv, createDecipheriv, createHash, createPrivateKey, createPublicKey, diffieHellman, hkdfSync
} from "node:crypto"
import { concat, equalBytes, pooled } from "./bytes.js"

/** Bytes of salt or protected header at the start of every cell. */
export const headBytes = 16
/** Bytes of GCM tag at the end of every cell. */
export const tagBytes = 16
/** Bytes a cell spends on sealing: the inner cell is this much shorter than the cell. */
export const overheadBytes = headBytes + tagBytes

const keyBytes = 32
const ivBytes = 12
const text = new TextEncoder()
const cellInfo = text.encode("weft-link-secure-v1 cell")

/** HKDF-SHA256 (extract and expand) through OpenSSL. */
export const hkdf = (ikm: Uint8Array, salt: Uint8Array, info: Uint8Array | string, length: number): Uint8Array =>
  new Uint8Array(hkdfSync("sha256", ikm, salt, typeof info === "string" ? text.encode(info) : info, length))

/** SHA-256 of the concatenation of `parts`. */
export const sha256 = (...parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const hash = createHash("sha256")
  for (const part of parts) hash.update(part)
  return new Uint8Array(hash.digest())
}

/** Re-exported for the handshake module. */
export { concat, equalBytes }

// ---------------------------------------------------------------------------------------------------
// One-shot AEAD (handshake payloads: each key seals exactly one message)

/** AES-256-GCM seal of `plaintext` under a key ‖ nonce of 44 bytes; returns ciphertext ‖ tag. */
export const sealOnce = (keyAndIv: Uint8Array, plaintext: Uint8Array): Uint8Array => {
  const cipher = createCipheriv("aes-256-gcm", keyAndIv.subarray(0, keyBytes), keyAndIv.subarray(keyBytes, keyBytes + ivBytes))
  const out = new Uint8Array(plaintext.length + tagBytes)
  out.set(cipher.update(plaintext), 0)
  cipher.final()
  out.set(cipher.getAuthTag(), plaintext.length)
  return out
}

/** Opens what `sealOnce` sealed; undefined if it does not authenticate. Never throws. */
export const openOnce = (keyAndIv: Uint8Array, sealed: Uint8Array): Uint8Array | undefined => {
  if (sealed.length < tagBytes) return undefined
  const length = sealed.length - tagBytes
  try {
    const decipher = createDecipheriv("aes-256-gcm", keyAndIv.subarray(0, keyBytes), keyAndIv.subarray(keyBytes, keyBytes + ivBytes))
    decipher.setAuthTag(sealed.subarray(length))
    const out = new Uint8Array(decipher.update(sealed.subarray(0, length)))
    decipher.final()
    return out
  } catch {
    return undefined
  }
}

// ---------------------------------------------------------------------------------------------------
// Handshake cells (PSK)

/**
 * The layout of every cell: a 16-byte head (a salt, or the protected packet number), the inner cell under
 * AES-256-GCM with the head as associated data, and the tag. One cipher object per cell: node:crypto
 * cannot reset a GCM object's nonce (this fixed cost dominates sealing a 1232-byte cell).
 */
const sealCell = (key: Uint8Array, nonce: Uint8Array, head: Uint8Array, inner: Uint8Array): Uint8Array => {
  const cipher = createCipheriv("aes-256-gcm", key, nonce)
  cipher.setAAD(head)
  // From a shared slab (bytes.pooled: no allocation of its own): every byte is written below, and the cell lives
  // only until the transport has sent it (or a handshake is over, for the few it repeats).
  const cell = pooled(inner.length + overheadBytes)
  cell.set(head, 0)
  cell.set(cipher.update(inner), headBytes)
  cipher.final()
  cell.set(cipher.getAuthTag(), headBytes + inner.length)
  return cell
}

/** Authenticates and decrypts a cell laid out by `sealCell`; undefined if it does not open. Never throws. */
const openCell = (key: Uint8Array, nonce: Uint8Array, cell: Uint8Array): Uint8Array | undefined => {
  const end = cell.length - tagBytes
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, nonce)
    decipher.setAAD(cell.subarray(0, headBytes))
    decipher.setAuthTag(cell.subarray(end))
    const out = decipher.update(cell.subarray(headBytes, end))
    decipher.final()
    // A plain Uint8Array over the fresh plaintext (no copy): callers get Uint8Array semantics (slice copies).
    return new Uint8Array(out.buffer, out.byteOffset, out.length)
  } catch {
    return undefined
  }
}

/** Seals an inner cell (`cellBytes − 32` bytes) into a handshake cell under the PSK and a fresh salt. */
export const sealHandshakeCell = (psk: Uint8Array, salt: Uint8Array, inner: Uint8Array): Uint8Array => {
  const keyAndIv = hkdf(psk, salt, cellInfo, keyBytes + ivBytes)
  return sealCell(keyAndIv.subarray(0, keyBytes), keyAndIv.subarray(keyBytes), salt.subarray(0, headBytes), inner)
}

/** Opens a handshake cell under the PSK; undefined for anything else. Never throws. */
export const openHandshakeCell = (psk: Uint8Array, cell: Uint8Array): Uint8Array | undefined => {
  if (cell.length <= overheadBytes) return undefined
  const keyAndIv = hkdf(psk, cell.subarray(0, headBytes), cellInfo, keyBytes + ivBytes)
  return openCell(keyAndIv.subarray(0, keyBytes), keyAndIv.subarray(keyBytes), cell)
}

// ---------------------------------------------------------------------------------------------------
// Data cells (session keys)

/** Raw keys of one direction of a session. */
export interface DirectionSecrets {
  readonly key: Uint8Array
  readonly iv: Uint8Array
  readonly hp: Uint8Array
}

/** Bytes of HKDF output one direction needs. */
export const directionSecretBytes = 2 * keyBytes + ivBytes

/** Splits `directionSecretBytes` of key material into a direction's keys. */
export const directionSecrets = (material: Uint8Array): DirectionSecrets => ({
  key: material.slice(0, keyBytes),
  iv: material.slice(keyBytes, keyBytes + ivBytes),
  hp: material.slice(keyBytes + ivBytes, directionSecretBytes)
})

/** A direction's sealing state: its keys, a long-lived header-protection cipher, the next packet number. */
export interface Sealer {
  readonly key: Buffer
  readonly iv: Uint8Array
  readonly hp: Cipher
  nextPn: number
  /** Protected headers of packet numbers `headersFromPn` onwards, made `headerBatch` at a time. */
  headers: Buffer
  headersFromPn: number
}

// Packet numbers are sequential, so the sealer protects the next headers in one cipher call per batch
// (one 16-byte update per cell costs about as much as a 1 KiB one).
const headerBatch = 64

/** A direction's opening state, with its replay window. */
export interface Opener {
  readonly key: Buffer
  readonly iv: Uint8Array
  readonly hp: Decipher
  readonly window: ReplayWindow
}

const ecb = <T extends Cipher | Decipher>(make: () => T): T => {
  const cipher = make()
  // ECB without padding maps each 16-byte update to 16 bytes at once, so one object serves every cell.
  cipher.setAutoPadding(false)
  return cipher
}

/** The sealing state for a direction. */
export const makeSealer = (secrets: DirectionSecrets): Sealer => ({
  key: Buffer.from(secrets.key),
  iv: secrets.iv,
  hp: ecb(() => createCipheriv("aes-256-ecb", secrets.hp, null)),
  nextPn: 0,
  headers: Buffer.alloc(0),
  headersFromPn: 0
})

/** The opening state for a direction. */
export const makeOpener = (secrets: DirectionSecrets, windowCells: number): Opener => ({
  key: Buffer.from(secrets.key),
  iv: secrets.iv,
  hp: ecb(() => createDecipheriv("aes-256-ecb", secrets.hp, null)),
  window: makeReplayWindow(windowCells)
})

const nonceOf = (iv: Uint8Array, pn: number): Buffer => {
  const nonce = Buffer.from(iv)
  const high = Math.floor(pn / 0x1_0000_0000)
  const low = pn >>> 0
  nonce[4] = nonce[4]! ^ (high >>> 24)
  nonce[5] = nonce[5]! ^ ((high >>> 16) & 0xff)
  nonce[6] = nonce[6]! ^ ((high >>> 8) & 0xff)
  nonce[7] = nonce[7]! ^ (high & 0xff)
  nonce[8] = nonce[8]! ^ (low >>> 24)
  nonce[9] = nonce[9]! ^ ((low >>> 16) & 0xff)
  nonce[10] = nonce[10]! ^ ((low >>> 8) & 0xff)
  nonce[11] = nonce[11]! ^ (low & 0xff)
  return nonce
}

/** Protects the headers of the next `headerBatch` packet numbers from `pn` on: AES-256-ECB(hp, pn as u64 ‖ 0⁸) each. */
const protectHeaders = (sealer: Sealer, pn: number): void => {
  const blocks = Buffer.alloc(headerBatch * headBytes)
  for (let index = 0; index < headerBatch; index++) {
    blocks.writeUInt32BE(Math.floor((pn + index) / 0x1_0000_0000), index * headBytes)
    blocks.writeUInt32BE((pn + index) >>> 0, index * headBytes + 4)
  }
  sealer.headers = sealer.hp.update(blocks)
  sealer.headersFromPn = pn
}

/** Seals an inner cell into a data cell with the next packet number. */
export const sealData = (sealer: Sealer, inner: Uint8Array): Uint8Array => {
  const pn = sealer.nextPn++
  if (pn - sealer.headersFromPn >= sealer.headers.length / headBytes) protectHeaders(sealer, pn)
  const at = (pn - sealer.headersFromPn) * headBytes
  return sealCell(sealer.key, nonceOf(sealer.iv, pn), sealer.headers.subarray(at, at + headBytes), inner)
}

/** Removes header protection: the packet number, or undefined if the cell is not under this key. */
export const packetNumberOf = (opener: Opener, cell: Uint8Array): number | undefined => {
  if (cell.length <= overheadBytes) return undefined
  const block = opener.hp.update(cell.subarray(0, headBytes))
  for (let index = 8; index < headBytes; index++) if (block[index] !== 0) return undefined
  return block.readUInt32BE(0) * 0x1_0000_0000 + block.readUInt32BE(4)
}

/** Authenticates and decrypts a data cell whose packet number `pn` was recovered; never throws. */
export const openData = (opener: Opener, cell: Uint8Array, pn: number): Uint8Array | undefined =>
  openCell(opener.key, nonceOf(opener.iv, pn), cell)

// ---------------------------------------------------------------------------------------------------
// Replay window

/** A sliding window over packet numbers: the highest seen and a bitmap of the `size` below it. */
export interface ReplayWindow {
  readonly size: number
  readonly bits: Uint32Array
  highest: number
}

/** An empty window of `size` packet numbers (rounded up to a multiple of 32). */
export const makeReplayWindow = (size: number): ReplayWindow => {
  const words = Math.max(1, Math.ceil(size / 32))
  return { size: words * 32, bits: new Uint32Array(words), highest: -1 }
}

const bitOf = (window: ReplayWindow, pn: number): [number, number] => {
  const slot = pn % window.size
  return [slot >>> 5, 1 << (slot & 31)]
}

/** Whether `pn` may be fresh: above the window's top, or inside it and not yet seen. */
export const replayFresh = (window: ReplayWindow, pn: number): boolean => {
  if (pn > window.highest) return true
  if (window.highest - pn >= window.size) return false
  const [word, mask] = bitOf(window, pn)
  return (window.bits[word]! & mask) === 0
}

/** Records `pn` as seen (call only after the cell authenticated). */
export const replayMark = (window: ReplayWindow, pn: number): void => {
  if (pn > window.highest) {
    if (pn - window.highest >= window.size) window.bits.fill(0)
    else for (let skipped = window.highest + 1; skipped < pn; skipped++) {
      const [word, mask] = bitOf(window, skipped)
      window.bits[word] = window.bits[word]! & ~mask
    }
    window.highest = pn
  }
  const [word, mask] = bitOf(window, pn)
  window.bits[word] = window.bits[word]! | mask
}

// ---------------------------------------------------------------------------------------------------
// X-Wing (draft-connolly-cfrg-xwing-kem): ML-KEM-768 from noble, X25519 from OpenSSL

/** A key encapsulation mechanism, as the handshake uses it. Implementations never throw. */
export interface Kem {
  readonly publicKeyBytes: number
  readonly cipherTextBytes: number
  /** Random bytes `keygen` takes. */
  readonly seedBytes: number
  /** Random bytes `encapsulate` takes. */
  readonly encapsulateRandomBytes: number
  readonly keygen: (seed: Uint8Array) => KemKeyPair
  readonly encapsulate: (
    publicKey: Uint8Array,
    random: Uint8Array
  ) => { readonly cipherText: Uint8Array; readonly sharedSecret: Uint8Array } | undefined
}

/** An ephemeral key pair: its public key, and decapsulation with its secret half. */
export interface KemKeyPair {
  readonly publicKey: Uint8Array
  readonly decapsulate: (cipherText: Uint8Array) => Uint8Array | undefined
}

const xwingLabel = Uint8Array.from([0x5c, 0x2e, 0x2f, 0x2f, 0x5e, 0x5c]) // "\.//^\"
const mlKemPublicKeyBytes = 1184
const mlKemCipherTextBytes = 1088
const x25519Bytes = 32
const placeholderX = Buffer.alloc(x25519Bytes).toString("base64url")

const base64url = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("base64url")

// Raw keys go through JWK: OpenSSL imports them directly, where a PKCS#8 DER import costs ~0.5 ms.
// Node insists on `x` in a private OKP JWK but derives the public key from `d` (the noble interop test checks it).
const x25519Private = (secret: Uint8Array): KeyObject =>
  createPrivateKey({ key: { kty: "OKP", crv: "X25519", d: base64url(secret), x: placeholderX }, format: "jwk" })

const x25519Public = (raw: Uint8Array): KeyObject =>
  createPublicKey({ key: { kty: "OKP", crv: "X25519", x: base64url(raw) }, format: "jwk" })

const x25519RawPublic = (privateKey: KeyObject): Uint8Array =>
  new Uint8Array(Buffer.from(createPublicKey(privateKey).export({ format: "jwk" }).x ?? "", "base64url"))

const xwingCombine = (ssM: Uint8Array, ssX: Uint8Array, ctX: Uint8Array, pkX: Uint8Array): Uint8Array =>
  new Uint8Array(createHash("sha3-256").update(ssM).update(ssX).update(ctX).update(pkX).update(xwingLabel).digest())

/**
 * X-Wing with X25519 done natively: the same keys, ciphertexts and shared secrets as noble's
 * `ml_kem768_x25519` for the same seed and randomness (the tests check it), about four times faster.
 * The seed is X-Wing's 32-byte decapsulation key, expanded with SHAKE256 to the ML-KEM seed (64) and
 * the X25519 secret (32); encapsulation randomness is the ML-KEM message (32) and the X25519 ephemeral
 * secret (32).
 */
export const xwing: Kem = {
  publicKeyBytes: mlKemPublicKeyBytes + x25519Bytes,
  cipherTextBytes: mlKemCipherTextBytes + x25519Bytes,
  seedBytes: 32,
  encapsulateRandomBytes: 64,
  keygen: (seed) => {
    const expanded = new Uint8Array(createHash("shake256", { outputLength: 96 }).update(seed).digest())
    const mlKem = ml_kem768.keygen(expanded.subarray(0, 64))
    const privateX = x25519Private(expanded.subarray(64, 96))
    const pkX = x25519RawPublic(privateX)
    // ML-KEM decapsulation re-encrypts under the pair's own public key. From its second decapsulation on, a pair
    // keeps that key expanded (noble's `prepare`: the matrix Â, t̂ and H(ek), about 7.5 KB), which makes each one
    // about 40% cheaper. A static key decapsulates in every handshake; an ephemeral one once, and never pays for it.
    let decapsulations = 0
    let prepared: { readonly decapsulate: (cipherText: Uint8Array, secretKey: Uint8Array) => Uint8Array } | undefined
    const decapsulateMlKem = (cipherText: Uint8Array): Uint8Array => {
      if (prepared === undefined && ++decapsulations > 1) prepared = ml_kem768.prepare(mlKem.publicKey)
      return prepared === undefined
        ? ml_kem768.decapsulate(cipherText, mlKem.secretKey)
        : prepared.decapsulate(cipherText, mlKem.secretKey)
    }
    return {
      publicKey: concat([mlKem.publicKey, pkX]),
      decapsulate: (cipherText) => {
        if (cipherText.length !== mlKemCipherTextBytes + x25519Bytes) return undefined
        try {
          const ctX = cipherText.subarray(mlKemCipherTextBytes)
          const ssM = decapsulateMlKem(cipherText.subarray(0, mlKemCipherTextBytes))
          const ssX = diffieHellman({ privateKey: privateX, publicKey: x25519Public(ctX) })
          return xwingCombine(ssM, ssX, ctX, pkX)
        } catch {
          return undefined
        }
      }
    }
  },
  encapsulate: (publicKey, random) => {
    if (publicKey.length !== mlKemPublicKeyBytes + x25519Bytes || random.length !== 64) return undefined
    try {
      const pkX = publicKey.subarray(mlKemPublicKeyBytes)
      const mlKem = ml_kem768.encapsulate(publicKey.subarray(0, mlKemPublicKeyBytes), random.subarray(0, 32))
      const ephemeral = x25519Private(random.subarray(32, 64))
      const ctX = x25519RawPublic(ephemeral)
      const ssX = diffieHellman({ privateKey: ephemeral, publicKey: x25519Public(pkX) })
      return { cipherText: concat([mlKem.cipherText, ctX]), sharedSecret: xwingCombine(mlKem.sharedSecret, ssX, ctX, pkX) }
    } catch {
      // A malformed ML-KEM key (coefficients out of range) or a low-order X25519 point.
      return undefined
    }
  }
}
