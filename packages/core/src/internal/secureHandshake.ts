/**
 * The secure link's handshake messages and their cryptography, as plain functions: encoding and
 * decoding each message, the transcript, the keys, the cookie, and the INIT replay cache. The state
 * machine that drives them lives in `LinkSecure.ts`.
 *
 * Frames (the first byte is the kind; each frame is cut into inner cells and every cell sealed under
 * the PSK, see `secureCrypto.ts`):
 *
 * | kind | body |
 * |---|---|
 * | 1 INIT | version(1) ‖ flags(1: bit 0 rekey) ‖ id_I(32) ‖ nonce_I(32) ‖ time_ms(8) ‖ epk_I(X-Wing, 1216) ‖ has_cookie(1) ‖ cookie(36) |
 * | 2 RESP | nonce_I ‖ nonce_R(32) ‖ ct(X-Wing, 1120) ‖ AEAD_{k_resp}(pk_R ‖ sig_R) |
 * | 3 FINISH | nonce_I ‖ nonce_R ‖ AEAD_{k_fin}(pk_I ‖ sig_I) |
 * | 4 COOKIE | nonce_I ‖ cookie(36) |
 *
 * Transcript and keys (H = SHA-256, HKDF = HKDF-SHA256(ikm, salt, info), ikm = psk ‖ ss):
 *
 * - th1 = H("weft-link-secure-v1" ‖ INIT up to and including epk_I) — the cookie is excluded: it is
 *   a load-shedding token that may be added on a retry of the same INIT;
 * - th2 = H(th1 ‖ RESP up to and including ct); k_resp = HKDF(ikm, th2, "resp");
 *   sig_R = Sign_R("weft-link-secure-v1 R" ‖ th2 ‖ id_I ‖ id_R);
 * - th3 = H(th2 ‖ pk_R ‖ sig_R); k_fin = HKDF(ikm, th3, "finish");
 *   sig_I = Sign_I("weft-link-secure-v1 I" ‖ th3 ‖ id_I ‖ id_R);
 * - session keys: HKDF(ikm, th3, "session", 152) = i→r (key, iv, hp) ‖ r→i (key, iv, hp).
 *
 * So each signature covers every message before it and both node IDs, and the session keys depend on
 * the PSK, the X-Wing secret and the transcript through the responder's signature — as TLS 1.3 derives
 * its application keys before the client's certificate and Finished. The responder knows them when it
 * sends RESP, so a dialer's data that overtakes FINISH is authenticated before it is held; the session
 * itself starts only once FINISH verifies (sig_I binds the initiator to this same th3).
 */
import type { Identity } from "../Identity.js"
import type { Signatures } from "../LinkPlain.js"
import * as NodeId from "../NodeId.js"
import { createHmac } from "node:crypto"
import type { DirectionSecrets, Kem, KemKeyPair } from "./secureCrypto.js"
import { concat, directionSecretBytes, directionSecrets, equalBytes, hkdf, openOnce, sealOnce, sha256 } from "./secureCrypto.js"

/** Protocol version carried in INIT. */
export const version = 1

/** Frame kinds; 1–4 travel only in PSK-sealed cells, 5–8 only in session-sealed cells. */
export const Kind = { Init: 1, Resp: 2, Finish: 3, Cookie: 4, Data: 5, Keepalive: 6, Close: 7, RekeyRequest: 8 } as const

/** Bytes of a node ID. */
export const idBytes = 32
/** Bytes of a handshake nonce. */
export const nonceBytes = 32
/** Bytes of a cookie: epoch (4) and HMAC-SHA256 (32). */
export const cookieBytes = 36

const text = new TextEncoder()
const protocolLabel = text.encode("weft-link-secure-v1")
const labelR = text.encode("weft-link-secure-v1 R")
const labelI = text.encode("weft-link-secure-v1 I")
const aeadBytes = 16
const keyAndIvBytes = 44

/** What the handshake is parameterised by. */
export interface Suite {
  readonly psk: Uint8Array
  readonly kem: Kem
  readonly signatures: Signatures
}

// ---------------------------------------------------------------------------------------------------
// INIT

/** The fields of an INIT. */
export interface Init {
  readonly rekey: boolean
  readonly id: Uint8Array
  readonly nonce: Uint8Array
  readonly timeMs: number
  readonly publicKey: Uint8Array
  readonly cookie: Uint8Array | undefined
}

const initCoreBytes = (kem: Kem) => 3 + idBytes + nonceBytes + 8 + kem.publicKeyBytes

/** Length of every INIT frame. */
export const initBytes = (kem: Kem): number => initCoreBytes(kem) + 1 + cookieBytes

/** Encodes an INIT. */
export const encodeInit = (kem: Kem, init: Init): Uint8Array => {
  const frame = new Uint8Array(initBytes(kem))
  const view = new DataView(frame.buffer)
  frame[0] = Kind.Init
  frame[1] = version
  frame[2] = init.rekey ? 1 : 0
  frame.set(init.id, 3)
  frame.set(init.nonce, 3 + idBytes)
  view.setUint32(3 + idBytes + nonceBytes, Math.floor(init.timeMs / 0x1_0000_0000))
  view.setUint32(3 + idBytes + nonceBytes + 4, init.timeMs >>> 0)
  frame.set(init.publicKey, 3 + idBytes + nonceBytes + 8)
  const core = initCoreBytes(kem)
  if (init.cookie !== undefined) {
    frame[core] = 1
    frame.set(init.cookie, core + 1)
  }
  return frame
}

/** Decodes an INIT; undefined if malformed (wrong length, version, flags). */
export const decodeInit = (kem: Kem, frame: Uint8Array): Init | undefined => {
  if (frame.length !== initBytes(kem) || frame[0] !== Kind.Init || frame[1] !== version || frame[2]! > 1) return undefined
  const core = initCoreBytes(kem)
  const hasCookie = frame[core]
  if (hasCookie !== 0 && hasCookie !== 1) return undefined
  const view = new DataView(frame.buffer, frame.byteOffset, frame.length)
  const at = 3 + idBytes + nonceBytes
  return {
    rekey: frame[2] === 1,
    id: frame.slice(3, 3 + idBytes),
    nonce: frame.slice(3 + idBytes, at),
    timeMs: view.getUint32(at) * 0x1_0000_0000 + view.getUint32(at + 4),
    publicKey: frame.slice(at + 8, core),
    cookie: hasCookie === 1 ? frame.slice(core + 1) : undefined
  }
}

/** th1: the transcript hash after INIT. */
export const initTranscript = (kem: Kem, frame: Uint8Array): Uint8Array =>
  sha256(protocolLabel, frame.subarray(0, initCoreBytes(kem)))

// ---------------------------------------------------------------------------------------------------
// COOKIE

/** Encodes a COOKIE reply to the INIT with `nonce`. */
export const encodeCookie = (nonce: Uint8Array, cookie: Uint8Array): Uint8Array =>
  concat([Uint8Array.of(Kind.Cookie), nonce, cookie])

/** Decodes a COOKIE; undefined if malformed. */
export const decodeCookie = (frame: Uint8Array): { readonly nonce: Uint8Array; readonly cookie: Uint8Array } | undefined =>
  frame.length === 1 + nonceBytes + cookieBytes
    ? { nonce: frame.subarray(1, 1 + nonceBytes), cookie: frame.slice(1 + nonceBytes) }
    : undefined

const cookieMac = (master: Uint8Array, epoch: number, address: string): Uint8Array => {
  const epochBytes = new Uint8Array(4)
  new DataView(epochBytes.buffer).setUint32(0, epoch)
  // A secret per epoch derived from one master: rotating needs no table, and old cookies die with their epoch.
  const secret = sha256(master, epochBytes)
  const mac = createHmac("sha256", secret).update(epochBytes).update(address).digest()
  return concat([epochBytes, mac])
}

/** A cookie for `address` in the current rotation `epoch`: epoch(4) ‖ HMAC(secret_epoch, epoch ‖ address). */
export const makeCookie = (master: Uint8Array, epoch: number, address: string): Uint8Array =>
  cookieMac(master, epoch >>> 0, address)

/** Checks a cookie: valid in the current or the previous epoch; older is expired; anything else invalid. */
export const checkCookie = (
  master: Uint8Array,
  epoch: number,
  address: string,
  cookie: Uint8Array
): "ok" | "expired" | "invalid" => {
  const claimed = new DataView(cookie.buffer, cookie.byteOffset, cookie.length).getUint32(0)
  if (claimed > epoch) return "invalid"
  if (!equalBytes(cookieMac(master, claimed, address), cookie)) return "invalid"
  return epoch - claimed <= 1 ? "ok" : "expired"
}

// ---------------------------------------------------------------------------------------------------
// RESP (responder)

/** Length of every RESP frame. */
export const respBytes = (suite: Suite): number =>
  1 + 2 * nonceBytes + suite.kem.cipherTextBytes + suite.signatures.publicKeyBytes + suite.signatures.signatureBytes + aeadBytes

/** Length of every FINISH frame. */
export const finishBytes = (suite: Suite): number =>
  1 + 2 * nonceBytes + suite.signatures.publicKeyBytes + suite.signatures.signatureBytes + aeadBytes

/** What the responder keeps between RESP and FINISH. */
export interface Responded {
  readonly frame: Uint8Array
  readonly nonceR: Uint8Array
  readonly th3: Uint8Array
  readonly ikm: Uint8Array
  readonly secrets: SessionSecrets
}

/** Builds RESP: the KEM encapsulation and the responder's signature. Undefined if the INIT's key is bad. */
export const respond = (
  suite: Suite,
  local: Identity,
  initFrame: Uint8Array,
  init: Init,
  nonceR: Uint8Array,
  encapsulateRandom: Uint8Array
): Responded | undefined => {
  const encapsulated = suite.kem.encapsulate(init.publicKey, encapsulateRandom)
  if (encapsulated === undefined) return undefined
  const clear = concat([Uint8Array.of(Kind.Resp), init.nonce, nonceR, encapsulated.cipherText])
  const th2 = sha256(initTranscript(suite.kem, initFrame), clear)
  const ikm = concat([suite.psk, encapsulated.sharedSecret])
  const signature = suite.signatures.sign(local, concat([labelR, th2, init.id, NodeId.toBytes(local.id)]))
  const sealed = sealOnce(hkdf(ikm, th2, "resp", keyAndIvBytes), concat([local.publicKey, signature]))
  const th3 = sha256(th2, local.publicKey, signature)
  return { frame: concat([clear, sealed]), nonceR, th3, ikm, secrets: sessionSecrets(ikm, th3) }
}

// ---------------------------------------------------------------------------------------------------
// FINISH (initiator)

/** Both directions' keys of a session. */
export interface SessionSecrets {
  readonly initiatorToResponder: DirectionSecrets
  readonly responderToInitiator: DirectionSecrets
}

const sessionSecrets = (ikm: Uint8Array, th3: Uint8Array): SessionSecrets => {
  const material = hkdf(ikm, th3, "session", 2 * directionSecretBytes)
  return {
    initiatorToResponder: directionSecrets(material.subarray(0, directionSecretBytes)),
    responderToInitiator: directionSecrets(material.subarray(directionSecretBytes))
  }
}

/** Why a handshake message was refused. */
export type Failure = "Malformed" | "Kem" | "Decrypt" | "Identity"

/** The initiator's state while it waits for RESP. */
export interface Initiating {
  readonly initFrame: Uint8Array
  readonly nonce: Uint8Array
  readonly keyPair: KemKeyPair
}

/** What the initiator learns from a verified RESP. */
export interface Finished {
  readonly peer: NodeId.NodeId
  readonly nonceR: Uint8Array
  readonly frame: Uint8Array
  readonly secrets: SessionSecrets
}

/** The nonces a RESP or FINISH carries, to find its handshake; undefined if too short. */
export const noncesOf = (frame: Uint8Array): { readonly nonceI: Uint8Array; readonly nonceR: Uint8Array } | undefined =>
  frame.length < 1 + 2 * nonceBytes
    ? undefined
    : { nonceI: frame.subarray(1, 1 + nonceBytes), nonceR: frame.subarray(1 + nonceBytes, 1 + 2 * nonceBytes) }

const splitIdentity = (suite: Suite, plain: Uint8Array) => ({
  publicKey: plain.subarray(0, suite.signatures.publicKeyBytes),
  signature: plain.subarray(suite.signatures.publicKeyBytes)
})

/**
 * Verifies RESP and builds FINISH and the session keys (decapsulation, one verify, one sign). `signer`
 * is `local` except in tests, which pass another identity to forge a FINISH.
 */
export const finish = (
  suite: Suite,
  local: Identity,
  state: Initiating,
  frame: Uint8Array,
  signer: Identity = local
): Finished | Failure => {
  if (frame.length !== respBytes(suite)) return "Malformed"
  const clearEnd = 1 + 2 * nonceBytes + suite.kem.cipherTextBytes
  const nonceR = frame.slice(1 + nonceBytes, 1 + 2 * nonceBytes)
  const sharedSecret = state.keyPair.decapsulate(frame.subarray(1 + 2 * nonceBytes, clearEnd))
  if (sharedSecret === undefined) return "Kem"
  const th2 = sha256(initTranscript(suite.kem, state.initFrame), frame.subarray(0, clearEnd))
  const ikm = concat([suite.psk, sharedSecret])
  const plain = openOnce(hkdf(ikm, th2, "resp", keyAndIvBytes), frame.subarray(clearEnd))
  if (plain === undefined) return "Decrypt"
  const responder = splitIdentity(suite, plain)
  const peer = NodeId.fromPublicKey(responder.publicKey)
  const idI = NodeId.toBytes(local.id)
  const signedR = concat([labelR, th2, idI, NodeId.toBytes(peer)])
  if (peer === local.id || !suite.signatures.verify(responder.publicKey, signedR, responder.signature)) return "Identity"
  const th3 = sha256(th2, responder.publicKey, responder.signature)
  const signature = suite.signatures.sign(signer, concat([labelI, th3, idI, NodeId.toBytes(peer)]))
  const sealed = sealOnce(hkdf(ikm, th3, "finish", keyAndIvBytes), concat([signer.publicKey, signature]))
  return {
    peer,
    nonceR,
    frame: concat([Uint8Array.of(Kind.Finish), state.nonce, nonceR, sealed]),
    secrets: sessionSecrets(ikm, th3)
  }
}

// ---------------------------------------------------------------------------------------------------
// Completion (responder)

/** Verifies FINISH against the INIT's claimed ID (the session keys are `responded.secrets`). */
export const complete = (
  suite: Suite,
  local: Identity,
  responded: Responded,
  claimedId: Uint8Array,
  frame: Uint8Array
): true | Failure => {
  if (frame.length !== finishBytes(suite)) return "Malformed"
  const plain = openOnce(hkdf(responded.ikm, responded.th3, "finish", keyAndIvBytes), frame.subarray(1 + 2 * nonceBytes))
  if (plain === undefined) return "Decrypt"
  const initiator = splitIdentity(suite, plain)
  if (!equalBytes(NodeId.toBytes(NodeId.fromPublicKey(initiator.publicKey)), claimedId)) return "Identity"
  const signed = concat([labelI, responded.th3, claimedId, NodeId.toBytes(local.id)])
  return suite.signatures.verify(initiator.publicKey, signed, initiator.signature) ? true : "Identity"
}

// ---------------------------------------------------------------------------------------------------
// INIT replay cache

/**
 * Recent INIT nonces, so a replayed INIT never costs a second KEM and signature. Bounded: past
 * `capacity` the oldest entry is evicted and the watermark rises to its time, so any INIT no newer
 * than an evicted one is refused too; entries older than the INIT age limit expire (such INITs are
 * refused as stale anyway).
 */
export interface ReplayCache {
  readonly capacity: number
  readonly seen: Map<string, number>
  watermarkMs: number
}

/** An empty cache. */
export const makeReplayCache = (capacity: number): ReplayCache => ({
  capacity: Math.max(1, capacity),
  seen: new Map(),
  watermarkMs: Number.NEGATIVE_INFINITY
})

const keyOf = (nonce: Uint8Array): string => Buffer.from(nonce.buffer, nonce.byteOffset, nonce.length).toString("hex")

/** Whether an INIT with this nonce and time was already answered (or may have been). */
export const isReplay = (cache: ReplayCache, nonce: Uint8Array, timeMs: number): boolean =>
  timeMs <= cache.watermarkMs || cache.seen.has(keyOf(nonce))

/** Records an INIT the responder is about to answer. */
export const record = (cache: ReplayCache, nonce: Uint8Array, timeMs: number): void => {
  if (cache.seen.size >= cache.capacity) {
    const [oldest, oldestMs] = cache.seen.entries().next().value!
    cache.seen.delete(oldest)
    cache.watermarkMs = Math.max(cache.watermarkMs, oldestMs)
  }
  cache.seen.set(keyOf(nonce), timeMs)
}

/**
 * Drops entries older than `oldestMs` (INITs that old are refused as stale). Entries arrive roughly in
 * time order, so the sweep stops at the first young one: an old entry behind it waits for a later sweep.
 */
export const sweepReplays = (cache: ReplayCache, oldestMs: number): void => {
  for (const [key, timeMs] of cache.seen) {
    if (timeMs >= oldestMs) return
    cache.seen.delete(key)
  }
}
