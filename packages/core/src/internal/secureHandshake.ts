/**
 * The secure link's handshake messages and their cryptography, as plain functions: encoding and
 * decoding each message, the certificates, the transcript, the keys, the cookie, and the INIT replay
 * cache. The state machine that drives them lives in `LinkSecure.ts`.
 *
 * Authentication is by KEM, not by signature (KEMTLS): each node holds a static X-Wing key pair derived
 * from its identity (`staticSeed`: HKDF over the ML-DSA-65 secret key, so there is no new key file) and
 * a *certificate* it signs once, when the link is made:
 *
 *     cert = pk_sig(1952) ‖ pk_kem(X-Wing, 1216) ‖ Sign(sk_sig, "weft-link-secure-v2 certificate" ‖ H(pk_sig) ‖ pk_kem)
 *
 * whose node ID is H(pk_sig). A handshake then costs KEM operations only (about 0.5 ms each) and, for a
 * certificate not seen before, one verification (about 1 ms; `CertificateCache` remembers verified ones).
 * A node proves it holds the static key by decapsulating: whoever derives a key that mixes in a secret
 * encapsulated to a certified key is that certificate's node.
 *
 * Frames (the first byte is the kind; each frame is cut into inner cells and every cell sealed under
 * the PSK, see `secureCrypto.ts`; `E_k(x)` is AES-256-GCM under key ‖ nonce k, ciphertext ‖ tag):
 *
 * | kind | body |
 * |---|---|
 * | 1 INIT | version(1: 2) ‖ flags(1: bit 0 rekey) ‖ id_I(32) ‖ nonce_I(32) ‖ time_ms(8) ‖ epk_I(X-Wing, 1216) ‖ has_cookie(1) ‖ cookie(36) |
 * | 2 RESP | nonce_I ‖ nonce_R(32) ‖ ct_e(1120) ‖ E_{k_resp}(cert_R) |
 * | 3 FINISH | nonce_I ‖ nonce_R ‖ E_{k_s}(ct_S) ‖ E_{k_fin}(cert_I) |
 * | 4 CONFIRM | nonce_I ‖ nonce_R ‖ E_{k_conf}(ct_C) |
 * | 5 COOKIE | nonce_I ‖ cookie(36) |
 *
 * - RESP: ct_e = Encaps(epk_I) → ss_e, the ephemeral secret (forward secrecy).
 * - FINISH: the initiator reads cert_R, then ct_S = Encaps(pk_kem of cert_R) → ss_S.
 * - CONFIRM: the responder decapsulates ct_S, checks that cert_I names id_I, then ct_C = Encaps(pk_kem of cert_I) → ss_C.
 * - Each side verifies the other's certificate signature right after its FINISH or CONFIRM went out, while
 *   the peer works on it, and trusts nothing before the check passed: a failed check puts the handshake
 *   back to waiting for RESP or FINISH. Neither message shows an unchecked peer anything it may not see
 *   (a certificate whose ID INIT already named, an encapsulation to the key the peer's certificate names).
 * - The initiator decapsulates ct_C and has the session; its first cell under the session keys (a
 *   keepalive it sends at once) is its key confirmation, and the responder's session starts on it.
 *
 * Transcript and keys (H = SHA-256, HKDF = HKDF-SHA256(ikm, salt, info), 44 bytes = AES key ‖ GCM nonce):
 *
 * - th1 = H("weft-link-secure-v2" ‖ INIT up to and including epk_I) — the cookie is excluded: it is a
 *   load-shedding token that may be added on a retry of the same INIT;
 * - th2 = H(th1 ‖ RESP up to and including ct_e); ikm1 = psk ‖ ss_e; k_resp = HKDF(ikm1, th2, "resp");
 *   th3 = H(th2 ‖ cert_R);
 * - k_s = HKDF(ikm1, th3, "finish kem"); th4 = H(th3 ‖ ct_S); ikm2 = ikm1 ‖ ss_S;
 *   k_fin = HKDF(ikm2, th4, "finish"); th5 = H(th4 ‖ cert_I);
 * - k_conf = HKDF(ikm2, th5, "confirm"); th6 = H(th5 ‖ ct_C); ikm3 = ikm2 ‖ ss_C;
 * - session keys: HKDF(ikm3, th6, "session", 152) = i→r (key, iv, hp) ‖ r→i (key, iv, hp).
 *
 * What each step proves. E_{k_s} opens only for whoever holds the ephemeral secret of the INIT, so the
 * responder decapsulates nothing for anyone else. CONFIRM opens only under ss_S, which only the holder
 * of cert_R's static key can decapsulate: the initiator knows it speaks to cert_R's node, over this
 * whole transcript (both certificates, so both node IDs). The session keys need ss_C, which only the
 * holder of cert_I's static key can decapsulate: the initiator's first session cell proves it is cert_I's
 * node (whose ID the responder checked against id_I), over the same transcript. ss_e comes from
 * ephemeral keys, so recorded traffic stays secret even if static keys and the PSK leak later.
 *
 * The responder does public-key work only for an INIT that opened under the PSK (and, under load,
 * returned a cookie): one encapsulation for RESP; then a decapsulation, one more encapsulation and a
 * certificate check for a FINISH whose E_{k_s} opened. The initiator's critical path is two
 * decapsulations and one encapsulation (after a link's first dial its ephemeral key pair is made ahead,
 * and its certificate check overlaps the responder's work on FINISH).
 *
 * Between peers that met before, each side also makes its static-key encapsulation ahead (`Ahead`), to
 * the key the peer's checked certificate named last time (the initiator's by the address it dials, the
 * responder's by the ID in INIT, and not under load): the initiator while the responder works on INIT,
 * the responder while the initiator works on RESP. That takes two of the six KEM operations off a
 * redial's critical path; a certificate naming another key gets a fresh encapsulation.
 *
 * Retransmission and replay: each side's timer repeats its last message (the initiator INIT, then
 * FINISH; the responder RESP, then CONFIRM), and the initiator its key confirmation until a cell from
 * the responder under the session keys shows it arrived. Every message is computed once and re-sent
 * as the same cells, which reassembly drops as duplicates; a RESP, FINISH or CONFIRM matching no
 * handshake in progress is counted as replayed and costs nothing. With X-Wing and ML-DSA-65, INIT is
 * 1328 bytes (2 cells of 1232), RESP 7678 (7), FINISH 7694 (7), CONFIRM 1201 (2).
 */
import type { Identity } from "../Identity.js"
import type { Signatures } from "../LinkPlain.js"
import * as NodeId from "../NodeId.js"
import { createHmac } from "node:crypto"
import type { DirectionSecrets, Kem, KemKeyPair } from "./secureCrypto.js"
import { concat, directionSecretBytes, directionSecrets, equalBytes, hkdf, openOnce, sealOnce, sha256 } from "./secureCrypto.js"

/** Protocol version carried in INIT. */
export const version = 2

/** Frame kinds; 1–5 travel only in PSK-sealed cells, 6–9 only in session-sealed cells. */
export const Kind = {
  Init: 1, Resp: 2, Finish: 3, Confirm: 4, Cookie: 5, Data: 6, Keepalive: 7, Close: 8, RekeyRequest: 9
} as const

/** Bytes of a node ID. */
export const idBytes = 32
/** Bytes of a handshake nonce. */
export const nonceBytes = 32
/** Bytes of a cookie: epoch (4) and HMAC-SHA256 (32). */
export const cookieBytes = 36

const text = new TextEncoder()
const protocolLabel = text.encode("weft-link-secure-v2")
const certificateLabel = text.encode("weft-link-secure-v2 certificate")
const staticKeyLabel = text.encode("weft-link-secure-v2 static kem")
const aeadBytes = 16
const keyAndIvBytes = 44
const noncesEnd = 1 + 2 * nonceBytes

/** What the handshake is parameterised by. */
export interface Suite {
  readonly psk: Uint8Array
  readonly kem: Kem
  readonly signatures: Signatures
}

// ---------------------------------------------------------------------------------------------------
// Certificates

/** What a node proves itself with: its certificate and the static KEM key pair it names. */
export interface Credentials {
  readonly id: NodeId.NodeId
  readonly certificate: Uint8Array
  readonly staticKey: KemKeyPair
}

/** Length of every certificate. */
export const certificateBytes = (suite: Suite): number =>
  suite.signatures.publicKeyBytes + suite.kem.publicKeyBytes + suite.signatures.signatureBytes

/**
 * The seed of a node's static KEM key pair: HKDF over its signing secret, so the pair follows the
 * identity (no key file of its own) and reveals nothing about the signing key.
 */
export const staticSeed = (suite: Suite, identity: Identity): Uint8Array =>
  hkdf(identity.secretKey, staticKeyLabel, "static kem seed", suite.kem.seedBytes)

const certificateStatement = (id: Uint8Array, kemPublicKey: Uint8Array): Uint8Array =>
  concat([certificateLabel, id, kemPublicKey])

/**
 * A certificate: `publicKey` ‖ `kemPublicKey` ‖ `signer`'s signature over `id` and `kemPublicKey`.
 * Nodes pass their own keys and ID; tests pass mismatched ones to forge.
 */
export const signCertificate = (
  suite: Suite,
  signer: Identity,
  publicKey: Uint8Array,
  id: Uint8Array,
  kemPublicKey: Uint8Array
): Uint8Array => concat([publicKey, kemPublicKey, suite.signatures.sign(signer, certificateStatement(id, kemPublicKey))])

/** A node's credentials: one key generation and one signature, once per link. */
export const makeCredentials = (suite: Suite, identity: Identity): Credentials => {
  const staticKey = suite.kem.keygen(staticSeed(suite, identity))
  const certificate = signCertificate(suite, identity, identity.publicKey, NodeId.toBytes(identity.id), staticKey.publicKey)
  return { id: identity.id, certificate, staticKey }
}

/** What a checked certificate says: the node's ID and its static KEM public key. */
export interface Certified {
  readonly id: NodeId.NodeId
  readonly kemPublicKey: Uint8Array
}

/**
 * Certificates verified before, by the SHA-256 of their bytes, least recently used first: a peer that
 * reconnects costs no second verification. Bounded: past `capacity` the least recently used is forgotten.
 */
export interface CertificateCache {
  readonly capacity: number
  readonly verified: Set<string>
}

/** An empty cache. */
export const makeCertificateCache = (capacity: number): CertificateCache => ({
  capacity: Math.max(0, capacity),
  verified: new Set()
})

const rememberCertificate = (cache: CertificateCache, key: string): void => {
  if (cache.capacity === 0) return
  if (cache.verified.size >= cache.capacity) cache.verified.delete(cache.verified.values().next().value!)
  cache.verified.add(key)
}

/**
 * A certificate whose fields were read but whose signature may not have been checked yet: `verify` checks it
 * once (a cache hit needs no check) and remembers the answer. The handshake checks a peer's certificate right
 * after its own reply went out, while the peer works on that reply (see `finish` and `confirm`).
 */
export interface ReadCertificate extends Certified {
  readonly verify: () => boolean
}

/** Reads a certificate (a cache hit when its exact bytes verified before); undefined if its length is wrong. */
export const readCertificate = (suite: Suite, cache: CertificateCache, certificate: Uint8Array): ReadCertificate | undefined => {
  if (certificate.length !== certificateBytes(suite)) return undefined
  const keyEnd = suite.signatures.publicKeyBytes
  const publicKey = certificate.subarray(0, keyEnd)
  const kemPublicKey = certificate.slice(keyEnd, keyEnd + suite.kem.publicKeyBytes)
  const id = NodeId.fromPublicKey(publicKey)
  const key = Buffer.from(sha256(certificate)).toString("base64")
  if (cache.verified.delete(key)) {
    cache.verified.add(key)
    return { id, kemPublicKey, verify: () => true }
  }
  const signature = certificate.slice(keyEnd + suite.kem.publicKeyBytes)
  const publicKeyCopy = publicKey.slice()
  let verdict: boolean | undefined
  const verify = (): boolean => {
    if (verdict === undefined) {
      verdict = suite.signatures.verify(publicKeyCopy, certificateStatement(NodeId.toBytes(id), kemPublicKey), signature)
      if (verdict) rememberCertificate(cache, key)
    }
    return verdict
  }
  return { id, kemPublicKey, verify }
}

/** Checks a certificate now (from the cache when its exact bytes verified before); undefined if it is not valid. */
export const checkCertificate = (suite: Suite, cache: CertificateCache, certificate: Uint8Array): Certified | undefined => {
  const read = readCertificate(suite, cache, certificate)
  return read !== undefined && read.verify() ? { id: read.id, kemPublicKey: read.kemPublicKey } : undefined
}

/** The node ID a certificate names (whether or not it is valid); undefined if its length is wrong. */
export const certificateId = (suite: Suite, certificate: Uint8Array): NodeId.NodeId | undefined =>
  certificate.length === certificateBytes(suite)
    ? NodeId.fromPublicKey(certificate.subarray(0, suite.signatures.publicKeyBytes))
    : undefined

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
// Sizes and the session keys

/** Length of every RESP frame. */
export const respBytes = (suite: Suite): number => noncesEnd + suite.kem.cipherTextBytes + certificateBytes(suite) + aeadBytes

/** Length of every FINISH frame. */
export const finishBytes = (suite: Suite): number =>
  noncesEnd + suite.kem.cipherTextBytes + aeadBytes + certificateBytes(suite) + aeadBytes

/** Length of every CONFIRM frame. */
export const confirmBytes = (suite: Suite): number => noncesEnd + suite.kem.cipherTextBytes + aeadBytes

/** Both directions' keys of a session. */
export interface SessionSecrets {
  readonly initiatorToResponder: DirectionSecrets
  readonly responderToInitiator: DirectionSecrets
}

const sessionSecrets = (ikm: Uint8Array, th6: Uint8Array): SessionSecrets => {
  const material = hkdf(ikm, th6, "session", 2 * directionSecretBytes)
  return {
    initiatorToResponder: directionSecrets(material.subarray(0, directionSecretBytes)),
    responderToInitiator: directionSecrets(material.subarray(directionSecretBytes))
  }
}

const key = (ikm: Uint8Array, transcript: Uint8Array, info: string): Uint8Array => hkdf(ikm, transcript, info, keyAndIvBytes)

/** Why a handshake message was refused. */
export type Failure = "Malformed" | "Kem" | "Decrypt" | "Identity"

/** The nonces a RESP, FINISH or CONFIRM carries, to find its handshake; undefined if too short. */
export const noncesOf = (frame: Uint8Array): { readonly nonceI: Uint8Array; readonly nonceR: Uint8Array } | undefined =>
  frame.length < noncesEnd
    ? undefined
    : { nonceI: frame.subarray(1, 1 + nonceBytes), nonceR: frame.subarray(1 + nonceBytes, noncesEnd) }

// The nonces only find a handshake (the link matches them first); checked here too so that each step
// stands on its own.
const sameNonces = (frame: Uint8Array, handshake: { readonly nonceI: Uint8Array; readonly nonceR: Uint8Array }): boolean =>
  equalBytes(frame.subarray(1, 1 + nonceBytes), handshake.nonceI) &&
  equalBytes(frame.subarray(1 + nonceBytes, noncesEnd), handshake.nonceR)

// ---------------------------------------------------------------------------------------------------
// Encapsulations made ahead

/**
 * An encapsulation made before it is needed, to a static key remembered from an earlier handshake, while
 * the peer works on our last message. It is used only if the certificate that arrives names exactly this
 * key (else it is dropped and a fresh one made), and only once.
 */
export interface Ahead {
  readonly kemPublicKey: Uint8Array
  readonly cipherText: Uint8Array
  readonly sharedSecret: Uint8Array
}

/** An encapsulation to `kemPublicKey` for later; undefined if the key is not a valid one. */
export const encapsulateAhead = (suite: Suite, kemPublicKey: Uint8Array, random: Uint8Array): Ahead | undefined => {
  const encapsulated = suite.kem.encapsulate(kemPublicKey, random)
  return encapsulated === undefined ? undefined : { kemPublicKey, ...encapsulated }
}

const encapsulateTo = (
  suite: Suite,
  kemPublicKey: Uint8Array,
  random: Uint8Array,
  ahead: Ahead | undefined
): { readonly cipherText: Uint8Array; readonly sharedSecret: Uint8Array } | undefined =>
  ahead !== undefined && equalBytes(ahead.kemPublicKey, kemPublicKey) ? ahead : suite.kem.encapsulate(kemPublicKey, random)

// ---------------------------------------------------------------------------------------------------
// RESP (responder)

/** What the responder keeps between RESP and FINISH. */
export interface Responded {
  readonly frame: Uint8Array
  readonly nonceI: Uint8Array
  readonly nonceR: Uint8Array
  readonly th3: Uint8Array
  /** psk ‖ ss_e. */
  readonly ikm: Uint8Array
}

/** Builds RESP: an encapsulation to the INIT's ephemeral key, and our certificate. Undefined if that key is bad. */
export const respond = (
  suite: Suite,
  local: Credentials,
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
  const sealed = sealOnce(key(ikm, th2, "resp"), local.certificate)
  return { frame: concat([clear, sealed]), nonceI: init.nonce, nonceR, th3: sha256(th2, local.certificate), ikm }
}

// ---------------------------------------------------------------------------------------------------
// FINISH (initiator)

/** The initiator's state while it waits for RESP. */
export interface Initiating {
  readonly initFrame: Uint8Array
  readonly nonce: Uint8Array
  readonly keyPair: KemKeyPair
}

/** What the initiator keeps between FINISH and CONFIRM. */
export interface Finished {
  /** The node cert_R names; proven only when CONFIRM opens. */
  readonly peer: NodeId.NodeId
  /** Checks cert_R's signature (once); the link calls it as soon as FINISH went out, and CONFIRM counts only after it passed. */
  readonly verifyPeer: () => boolean
  /** The static KEM key cert_R names. */
  readonly peerStaticKey: Uint8Array
  readonly nonceI: Uint8Array
  readonly nonceR: Uint8Array
  readonly frame: Uint8Array
  readonly th5: Uint8Array
  /** psk ‖ ss_e ‖ ss_S. */
  readonly ikm: Uint8Array
}

/**
 * Opens RESP, reads cert_R and builds FINISH (a decapsulation and an encapsulation). cert_R's signature is
 * left to `verifyPeer`, so the link can check it while the responder works on FINISH: FINISH shows an
 * unchecked responder nothing it may not see (our certificate, whose ID INIT already named, and an
 * encapsulation to the key cert_R names), and nothing is trusted before the check passes.
 */
export const finish = (
  suite: Suite,
  local: Credentials,
  cache: CertificateCache,
  state: Initiating,
  frame: Uint8Array,
  encapsulateRandom: Uint8Array,
  ahead?: Ahead
): Finished | Failure => {
  if (frame.length !== respBytes(suite)) return "Malformed"
  const clearEnd = noncesEnd + suite.kem.cipherTextBytes
  const sharedSecret = state.keyPair.decapsulate(frame.subarray(noncesEnd, clearEnd))
  if (sharedSecret === undefined) return "Kem"
  const th2 = sha256(initTranscript(suite.kem, state.initFrame), frame.subarray(0, clearEnd))
  const ikm1 = concat([suite.psk, sharedSecret])
  const certificate = openOnce(key(ikm1, th2, "resp"), frame.subarray(clearEnd))
  if (certificate === undefined) return "Decrypt"
  const responder = readCertificate(suite, cache, certificate)
  if (responder === undefined || responder.id === local.id) return "Identity"
  const encapsulated = encapsulateTo(suite, responder.kemPublicKey, encapsulateRandom, ahead)
  if (encapsulated === undefined) return "Kem"
  const th3 = sha256(th2, certificate)
  const th4 = sha256(th3, encapsulated.cipherText)
  const ikm = concat([ikm1, encapsulated.sharedSecret])
  const nonceR = frame.slice(1 + nonceBytes, noncesEnd)
  const sealedKem = sealOnce(key(ikm1, th3, "finish kem"), encapsulated.cipherText)
  const sealedCertificate = sealOnce(key(ikm, th4, "finish"), local.certificate)
  return {
    peer: responder.id,
    verifyPeer: responder.verify,
    peerStaticKey: responder.kemPublicKey,
    nonceI: state.nonce,
    nonceR,
    frame: concat([Uint8Array.of(Kind.Finish), state.nonce, nonceR, sealedKem, sealedCertificate]),
    th5: sha256(th4, local.certificate),
    ikm
  }
}

// ---------------------------------------------------------------------------------------------------
// CONFIRM (responder)

/** What an opened FINISH yields the responder: CONFIRM and the session's keys, valid once `verifyPeer` passed. */
export interface Confirmed {
  readonly frame: Uint8Array
  readonly secrets: SessionSecrets
  /** Checks cert_I's signature (once); the link calls it as soon as CONFIRM went out, and starts no session before it passed. */
  readonly verifyPeer: () => boolean
  /** The static KEM key cert_I names. */
  readonly peerStaticKey: Uint8Array
}

/**
 * Opens FINISH (its KEM ciphertext first: nothing is decapsulated for a sender without the INIT's
 * ephemeral secret), checks that cert_I names the INIT's claimed ID, and builds CONFIRM. cert_I's
 * signature is left to `verifyPeer`, as cert_R's in `finish`: CONFIRM only proves that we decapsulated
 * ct_S, and an encapsulation to an unchecked key gives its holder nothing while we start no session.
 */
export const confirm = (
  suite: Suite,
  local: Credentials,
  cache: CertificateCache,
  responded: Responded,
  claimedId: Uint8Array,
  frame: Uint8Array,
  encapsulateRandom: Uint8Array,
  ahead?: Ahead
): Confirmed | Failure => {
  if (frame.length !== finishBytes(suite) || !sameNonces(frame, responded)) return "Malformed"
  const kemEnd = noncesEnd + suite.kem.cipherTextBytes + aeadBytes
  const cipherText = openOnce(key(responded.ikm, responded.th3, "finish kem"), frame.subarray(noncesEnd, kemEnd))
  if (cipherText === undefined) return "Decrypt"
  const staticSecret = local.staticKey.decapsulate(cipherText)
  if (staticSecret === undefined) return "Kem"
  const th4 = sha256(responded.th3, cipherText)
  const ikm2 = concat([responded.ikm, staticSecret])
  const certificate = openOnce(key(ikm2, th4, "finish"), frame.subarray(kemEnd))
  if (certificate === undefined) return "Decrypt"
  // The cheap check first: the certificate must name the node the INIT claimed.
  const claimed = certificateId(suite, certificate)
  if (claimed === undefined || !equalBytes(NodeId.toBytes(claimed), claimedId)) return "Identity"
  const initiator = readCertificate(suite, cache, certificate)
  if (initiator === undefined) return "Identity"
  const encapsulated = encapsulateTo(suite, initiator.kemPublicKey, encapsulateRandom, ahead)
  if (encapsulated === undefined) return "Kem"
  const th5 = sha256(th4, certificate)
  const sealed = sealOnce(key(ikm2, th5, "confirm"), encapsulated.cipherText)
  return {
    frame: concat([Uint8Array.of(Kind.Confirm), responded.nonceI, responded.nonceR, sealed]),
    secrets: sessionSecrets(concat([ikm2, encapsulated.sharedSecret]), sha256(th5, encapsulated.cipherText)),
    verifyPeer: initiator.verify,
    peerStaticKey: initiator.kemPublicKey
  }
}

// ---------------------------------------------------------------------------------------------------
// Completion (initiator)

/** Opens CONFIRM (proof the responder decapsulated ct_S) and derives the session keys. */
export const complete = (suite: Suite, local: Credentials, finished: Finished, frame: Uint8Array): SessionSecrets | Failure => {
  if (frame.length !== confirmBytes(suite) || !sameNonces(frame, finished)) return "Malformed"
  const cipherText = openOnce(key(finished.ikm, finished.th5, "confirm"), frame.subarray(noncesEnd))
  if (cipherText === undefined) return "Decrypt"
  const sharedSecret = local.staticKey.decapsulate(cipherText)
  if (sharedSecret === undefined) return "Kem"
  return sessionSecrets(concat([finished.ikm, sharedSecret]), sha256(finished.th5, cipherText))
}

// ---------------------------------------------------------------------------------------------------
// INIT replay cache

/**
 * Recent INIT nonces, so a replayed INIT never costs a second encapsulation. Bounded: past
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
