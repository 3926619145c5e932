/**
 * `LinkSecure`: the PSK-gated, post-quantum, probe-silent link, behind the same `Link` contract as
 * `LinkPlain` (whose structure it keeps: a session table keyed by peer, shared dials, one
 * housekeeping fiber, bounded tables).
 *
 * - **Cells** (`internal/secureCrypto.ts`): every cell is exactly `cellBytes` and AEAD-sealed
 *   (AES-256-GCM). Handshake cells are sealed under a key derived from the network PSK and a fresh
 *   random salt; data cells under per-direction session keys, behind a protected packet number. A cell
 *   that opens under neither gets no reply and leaves no state. No byte position is constant.
 * - **Handshake** (`internal/secureHandshake.ts`): INIT → RESP → FINISH → CONFIRM, then the
 *   initiator's first session cell. X-Wing (ML-KEM-768 + X25519) to an ephemeral key of the initiator
 *   (forward secrecy), and KEM authentication (KEMTLS): each side encapsulates to the static X-Wing key
 *   in the other's certificate, which its ML-DSA-65 identity signed once when the link was made; no
 *   signature per handshake. Session keys from HKDF(psk ‖ three KEM secrets, transcript). Each side
 *   checks the other's certificate just after its own FINISH or CONFIRM went out, while the peer works
 *   on it, and starts nothing before the check passed; verified certificates are cached
 *   (`certificateCacheEntriesMax`). Between peers that met before, each side makes its encapsulation to
 *   the other's static key ahead, while the other works on its last message (`staticKeysKnownMax`).
 *   The responder does no public-key work before an INIT opened under the PSK, and none at all for an
 *   INIT it has answered before (replay cache); with `handshakesBeforeCookie` responder handshakes in
 *   flight it answers INIT with a stateless cookie and works only for an INIT that returns a valid one.
 *   The initiator's session starts on CONFIRM, the responder's on the initiator's first cell under the
 *   session keys.
 * - **Replay**: a sliding window over packet numbers per key (`replayWindowCells`).
 * - **Rekey**: the session's initiator runs a fresh handshake over the live session after
 *   `rekeyAfterCells` cells or `rekeyAfter` (the responder asks for one when its own count runs out).
 *   On CONFIRM the initiator sends one keepalive under the new keys; the responder switches when it
 *   arrives and answers with a cell under the new keys; the initiator switches when that cell arrives.
 *   Old receive keys stay valid for `rekeyGracePeriod`, so no cell in flight is lost; the `Session`
 *   object stays the same.
 * - **One session per peer**: concurrent dials share one handshake. When two nodes dial each other,
 *   the handshake started by the node with the lower ID (text order) wins on both sides: the other
 *   node drops its own attempt and answers, so both end with one session under the same keys.
 *
 * The per-cell path is plain code over buffers; an Effect appears only where a handshake needs one.
 * Cryptographic randomness comes from node:crypto (a parameter, so a simulation can seed it).
 */
import type { Scope } from "effect"
import { Chunk, Context, Deferred, Duration, Effect, Exit, FiberId, Layer, Mailbox, Option, Stream } from "effect"
import { randomBytes as cryptoRandomBytes } from "node:crypto"
import * as Identity from "./Identity.js"
import * as fragment from "./internal/fragment.js"
import * as Table from "./internal/linkTable.js"
import * as Inbound from "./internal/sessionInbound.js"
import * as crypto from "./internal/secureCrypto.js"
import * as hs from "./internal/secureHandshake.js"
import { Limits } from "./Limits.js"
import type { Session, SessionInfo, Stats } from "./Link.js"
import { Link } from "./Link.js"
import type { Signatures } from "./LinkPlain.js"
import { mlDsa65 } from "./LinkPlain.js"
import * as NodeId from "./NodeId.js"
import type { Address, Datagram, Endpoint } from "./Transport.js"
import { Transport } from "./Transport.js"
import type { TransportError } from "./WeftError.js"
import { LinkError } from "./WeftError.js"
import { Entropy } from "./Entropy.js"

/** Bytes of the network pre-shared key. */
export const pskBytes = 32

/** What every node of a network shares. */
export interface Options {
  /** The network key: 32 bytes; a node without it cannot elicit a single byte from this one. */
  readonly psk: Uint8Array
}

/** What tests (and simulations) may swap: the signature scheme, the KEM, the source of randomness. */
export interface Parts {
  readonly signatures?: Signatures | undefined
  readonly kem?: crypto.Kem | undefined
  /** Cryptographically secure random bytes (default node:crypto); a simulation may seed its own. */
  readonly randomBytes?: ((length: number) => Uint8Array) | undefined
}

/** How much state the link holds, for tests and metrics that check it stays bounded. */
export interface Tables {
  readonly sessions: number
  readonly handshakes: number
  readonly reassemblyAddresses: number
  readonly reassemblyPartials: number
  readonly handshakeReassemblyAddresses: number
  readonly replayCacheEntries: number
}

/**
 * Counters of refused input and security events, beyond `Link.Stats`. Each refused cell also counts in
 * `cellsRejected` (each refused handshake in `handshakesFailed`), except duplicate handshake cells.
 */
export interface SecurityStats {
  /** Cells of the wrong size (truncated or oversized datagrams). */
  readonly cellsWrongSize: number
  /** Cells that opened under neither the PSK nor a session key: wrong PSK, junk, a corrupted header. */
  readonly cellsUnauthenticated: number
  /** Data cells whose header matched a session key but whose AEAD tag did not. */
  readonly cellsTampered: number
  /** Data cells refused by the replay window. */
  readonly cellsReplayed: number
  /** Authenticated frames that were malformed or of a kind not allowed where they arrived. */
  readonly framesMalformed: number
  /** Handshake messages seen before (replayed or duplicated INIT, RESP, FINISH, CONFIRM or COOKIE): no work done. */
  readonly handshakesReplayed: number
  /** Handshake cells dropped on arrival as copies of a frame just reassembled (duplicates or quick replays). */
  readonly handshakeCellsDuplicate: number
  /** INITs whose timestamp was outside `handshakeInitMaxAge`. */
  readonly initsStale: number
  /**
   * Handshakes refused for a bad certificate, a node ID mismatch, a message that does not open under its
   * handshake's keys (a forger, or a man in the middle without the static key), or a bad KEM input.
   */
  readonly identityFailures: number
  /** The peer's INIT lost the simultaneous-dial tie-break and was ignored. */
  readonly handshakesCrossed: number
  readonly cookiesSent: number
  readonly cookiesExpired: number
  readonly cookiesInvalid: number
  /** INITs answered with the responder's work (an encapsulation; one per answered INIT). */
  readonly responderHandshakes: number
  /** Key switches completed (both roles). */
  readonly rekeys: number
}

/** The `Link` service as `LinkSecure` provides it, plus its table sizes and security counters. */
export type Service = Context.Tag.Service<Link> & {
  readonly tables: Effect.Effect<Tables>
  readonly security: Effect.Effect<SecurityStats>
}

const Kind = hs.Kind
const keepaliveFrame = Uint8Array.of(Kind.Keepalive)
const closeFrame = Uint8Array.of(Kind.Close)
const rekeyRequestFrame = Uint8Array.of(Kind.RekeyRequest)

interface Settings {
  readonly cellBytes: number
  readonly innerBytes: number
  readonly frameBytesMax: number
  readonly peersMax: number
  readonly handshakesMax: number
  readonly attemptMs: number
  readonly attemptsMax: number
  readonly idleMs: number
  readonly keepaliveMs: number
  readonly inboxFrames: number
  readonly earlyCellsMax: number
  readonly rekeyAfterCells: number
  readonly rekeyAfterMs: number
  readonly rekeyGraceMs: number
  readonly replayWindowCells: number
  readonly cookieRotationMs: number
  readonly handshakesBeforeCookie: number
  readonly initMaxAgeMs: number
  readonly staticKeysKnownMax: number
  readonly tickMs: number
}

/**
 * A handshake message and the frame id it is always sent under: a retransmission re-seals the same
 * cells, so the receiver's reassembler completes the frame from cells of several attempts.
 */
interface Flight {
  readonly frame: Uint8Array
  readonly frameId: number
}

/** Our side of a handshake we started (a dial, or a rekey of a live session), until CONFIRM. */
interface Initiator {
  readonly rekey: boolean
  readonly fields: hs.Init
  readonly state: hs.Initiating
  /** The message the timer repeats: INIT, then FINISH once a RESP checked out. */
  flight: Flight
  cookie: Uint8Array | undefined
  /** Set by a RESP that checked out: what CONFIRM is opened with. */
  finished: hs.Finished | undefined
  /** The encapsulation to the static key last seen at this address, made while the responder works on INIT. */
  ahead: hs.Ahead | undefined
  attempts: number
  sentAtMs: number
}

/** Our side of a handshake a peer started, until the initiator's first cell under the session keys. */
interface Responder {
  readonly peer: NodeId.NodeId
  readonly claimedId: Uint8Array
  readonly responded: hs.Responded
  /** The message the timer repeats: RESP, then CONFIRM once FINISH checked out. */
  flight: Flight
  /** Set with CONFIRM: the session's keys; the initiator's first cell under them completes the handshake. */
  keys: Keys | undefined
  readonly rekey: boolean
  /** The peer held a session with us when it sent INIT: it lost it (restart), so ours is replaced. */
  readonly replace: boolean
  sends: number
  sentAtMs: number
  /** Inner cells authenticated under `keys` before the session is installed; delivered with it. */
  readonly early: Array<Uint8Array>
  /** The encapsulation to the static key this node ID's certificate named last time, made while it works on RESP. */
  ahead: hs.Ahead | undefined
}

/** Handshakes in progress with one address. */
interface Pending {
  readonly deferred: Deferred.Deferred<Session, LinkError>
  initiator: Initiator | undefined
  responder: Responder | undefined
}

/** One generation of session keys. */
interface Keys {
  readonly sealer: crypto.Sealer
  readonly opener: crypto.Opener
}

/**
 * The initiator's key confirmation (a keepalive under the keys CONFIRM gave), repeated until a cell
 * from the responder under those keys shows it arrived.
 */
interface Confirming {
  readonly nonceI: Uint8Array
  readonly nonceR: Uint8Array
  sends: number
  sentAtMs: number
}

interface LiveState {
  readonly info: SessionInfo
  readonly inbox: Mailbox.Mailbox<Uint8Array>
  readonly closedSignal: Deferred.Deferred<void>
  /** Set while a layer above takes frames with `Session.receive`. */
  handler: ((frame: Uint8Array) => void) | undefined
  keys: Keys
  /** Receive keys of the generation before `keys`, valid until `previousUntilMs`. */
  previous: crypto.Opener | undefined
  previousUntilMs: number
  /** Initiator only: keys from a rekey, used once the responder's first cell under them arrives. */
  next: Keys | undefined
  nextSinceMs: number
  keysSinceMs: number
  confirming: Confirming | undefined
  rekeyRequested: boolean
  rekeyNotBeforeMs: number
  lastInboundMs: number
  lastSentMs: number
  open: boolean
}

interface Live extends LiveState {
  readonly session: Session
}

type Security = { -readonly [K in Exclude<keyof SecurityStats, "handshakeCellsDuplicate">]: number }

interface Counters extends Security {
  sessionsOpened: number
  sessionsClosed: number
  handshakesFailed: number
  cellsRejected: number
  framesSent: number
  framesReceived: number
  framesDroppedInboxFull: number
}

interface Ctx {
  readonly endpoint: Endpoint
  readonly identity: Identity.Identity
  readonly suite: hs.Suite
  readonly credentials: hs.Credentials
  readonly certificates: hs.CertificateCache
  /** Static KEM keys from checked certificates, by `dialedKey` or `dialerKey`; least recently used first. */
  readonly staticKeys: Map<string, Uint8Array>
  readonly random: (length: number) => Uint8Array
  readonly cookieMaster: Uint8Array
  readonly settings: Settings
  readonly now: () => number
  readonly reassembler: fragment.Reassembler
  readonly handshakeReassembler: fragment.Reassembler
  readonly replays: hs.ReplayCache
  readonly sessions: Map<NodeId.NodeId, Live>
  readonly byAddress: Map<Address, Live>
  readonly pendings: Map<Address, Pending>
  readonly accepted: Mailbox.Mailbox<Session>
  readonly counters: Counters
  /** The next INIT's ephemeral key pair, made while a dial waits on the network (used once, then gone). */
  spare: crypto.KemKeyPair | undefined
  frameId: number
  closing: boolean
}

// ---------------------------------------------------------------------------------------------------
// Sending

const cutFrame = (ctx: Ctx, frame: Uint8Array): Array<Uint8Array> => {
  ctx.frameId = (ctx.frameId + 1) >>> 0
  return fragment.cut(frame, ctx.frameId, ctx.settings.innerBytes)
}


/** Hands cells to the transport as plain code; the first refusal stops the rest (they belong to one frame). */
const unsafeSendCells = (ctx: Ctx, to: Address, cells: ReadonlyArray<Uint8Array>): TransportError | undefined => {
  for (const cell of cells) {
    const error = ctx.endpoint.unsafeSend(to, cell)
    if (error !== undefined) return error
  }
  return undefined
}

const sendCells = (ctx: Ctx, to: Address, cells: ReadonlyArray<Uint8Array>): Effect.Effect<void, TransportError> =>
  Effect.suspend(() => {
    const error = unsafeSendCells(ctx, to, cells)
    return error === undefined ? Effect.void : Effect.fail(error)
  })

const nextFrameId = (ctx: Ctx): number => (ctx.frameId = (ctx.frameId + 1) >>> 0)

const flightOf = (ctx: Ctx, frame: Uint8Array): Flight => ({ frame, frameId: nextFrameId(ctx) })

/** A handshake message, each cell sealed under the PSK with its own salt. Best effort: retries are timer-driven. */
const sendFlight = (ctx: Ctx, to: Address, flight: Flight): Effect.Effect<void> =>
  Effect.suspend(() => {
    const inners = fragment.cut(flight.frame, flight.frameId, ctx.settings.innerBytes)
    const cells = inners.map((inner) => crypto.sealHandshakeCell(ctx.suite.psk, ctx.random(crypto.headBytes), inner))
    return Effect.ignore(sendCells(ctx, to, cells))
  })

/** A handshake message sent once (a COOKIE). */
const sendHandshake = (ctx: Ctx, to: Address, frame: Uint8Array): Effect.Effect<void> =>
  Effect.suspend(() => sendFlight(ctx, to, flightOf(ctx, frame)))

/** A session frame, sealed now (so packet numbers follow call order) and sent. */
const unsafeSendSealed = (ctx: Ctx, live: LiveState, frame: Uint8Array, keys: Keys = live.keys): TransportError | undefined => {
  const inners = cutFrame(ctx, frame)
  for (let i = 0; i < inners.length; i++) inners[i] = crypto.sealData(keys.sealer, inners[i]!)
  live.lastSentMs = ctx.now()
  return unsafeSendCells(ctx, live.info.remote, inners)
}

const sendSealed = (
  ctx: Ctx,
  live: LiveState,
  frame: Uint8Array,
  keys: (live: LiveState) => Keys = (current) => current.keys
): Effect.Effect<void, TransportError> =>
  Effect.suspend(() => {
    const error = unsafeSendSealed(ctx, live, frame, keys(live))
    return error === undefined ? Effect.void : Effect.fail(error)
  })

const sendSealedQuiet = (ctx: Ctx, live: LiveState, frame: Uint8Array): Effect.Effect<void> =>
  Effect.ignore(sendSealed(ctx, live, frame))

/** The initiator's key confirmation: a keepalive under the keys its last CONFIRM gave (a rekey's, if any). */
const sendConfirmation = (ctx: Ctx, live: LiveState): Effect.Effect<void> =>
  Effect.ignore(sendSealed(ctx, live, keepaliveFrame, (current) => current.next ?? current.keys))

const rejectCells = (ctx: Ctx, cells: number): undefined => {
  ctx.counters.cellsRejected += cells
  return undefined
}

const rejectFrame = (ctx: Ctx, frame: Uint8Array, counter?: keyof Security): undefined => {
  if (counter !== undefined) ctx.counters[counter]++
  return rejectCells(ctx, fragment.cellsFor(frame.length, ctx.settings.innerBytes))
}

const failHandshake = (ctx: Ctx, counter?: keyof Security): undefined => {
  if (counter !== undefined) ctx.counters[counter]++
  ctx.counters.handshakesFailed++
  return undefined
}

// ---------------------------------------------------------------------------------------------------
// Static keys of peers met before (see `hs.Ahead`)

const dialedKey = (address: Address): string => `dialed ${address}`
const dialerKey = (peer: NodeId.NodeId): string => `dialer ${peer}`

/** Remembers the static key a checked certificate named; bounded by `staticKeysKnownMax`, least recently used out. */
const rememberStaticKey = (ctx: Ctx, key: string, staticKey: Uint8Array): void => {
  if (ctx.settings.staticKeysKnownMax <= 0) return
  ctx.staticKeys.delete(key)
  if (ctx.staticKeys.size >= ctx.settings.staticKeysKnownMax) ctx.staticKeys.delete(ctx.staticKeys.keys().next().value!)
  ctx.staticKeys.set(key, staticKey)
}

/** An encapsulation to the static key remembered under `key`, if any; made while the peer works on our message. */
const encapsulateAhead = (ctx: Ctx, key: string): hs.Ahead | undefined => {
  const staticKey = ctx.staticKeys.get(key)
  return staticKey === undefined
    ? undefined
    : hs.encapsulateAhead(ctx.suite, staticKey, ctx.random(ctx.suite.kem.encapsulateRandomBytes))
}

// ---------------------------------------------------------------------------------------------------
// Keys

const keysFor = (ctx: Ctx, secrets: hs.SessionSecrets, initiator: boolean): Keys => {
  const out = initiator ? secrets.initiatorToResponder : secrets.responderToInitiator
  const into = initiator ? secrets.responderToInitiator : secrets.initiatorToResponder
  return { sealer: crypto.makeSealer(out), opener: crypto.makeOpener(into, ctx.settings.replayWindowCells) }
}

/** The initiator's switch to rekeyed keys, on the first cell the responder sealed under them. */
const promote = (ctx: Ctx, live: LiveState, next: Keys, nowMs: number): void => {
  live.previous = live.keys.opener
  live.previousUntilMs = nowMs + ctx.settings.rekeyGraceMs
  live.keys = next
  live.next = undefined
  live.keysSinceMs = nowMs
  live.confirming = undefined
  ctx.counters.rekeys++
}

/** The responder's switch, on the initiator's first cell under a rekey's keys. */
const switchKeys = (ctx: Ctx, live: LiveState, keys: Keys, nowMs: number): void => {
  live.previous = live.keys.opener
  live.previousUntilMs = nowMs + ctx.settings.rekeyGraceMs
  live.keys = keys
  live.keysSinceMs = nowMs
  live.rekeyNotBeforeMs = nowMs + ctx.settings.attemptMs
  ctx.counters.rekeys++
}

// ---------------------------------------------------------------------------------------------------
// Sessions

/** Drops a rekey in progress with this address: it belongs to the session being closed. */
const dropRekey = (ctx: Ctx, address: Address): void => {
  const pending = ctx.pendings.get(address)
  if (pending === undefined) return
  if (pending.initiator?.rekey === true) pending.initiator = undefined
  if (pending.responder?.rekey === true) pending.responder = undefined
  if (pending.initiator === undefined && pending.responder === undefined) {
    ctx.pendings.delete(address)
    Deferred.unsafeDone(pending.deferred, Exit.fail(new LinkError({ reason: "Closed" })))
  }
}

/** Releases everything a session holds (and a rekey in progress). Sends nothing: callers decide whether the peer is told. */
const closeLocal = (ctx: Ctx, live: LiveState): void => Table.release(ctx, live, (address) => dropRekey(ctx, address))

const sessionOf = (ctx: Ctx, live: LiveState): Session => {
  const { frameBytesMax } = ctx.settings
  const unsafeSend = Table.sessionUnsafeSend(live, frameBytesMax, ctx.counters, (frame) =>
    unsafeSendSealed(ctx, live, crypto.concat([Uint8Array.of(Kind.Data), frame])))
  return {
    peer: live.info.peer,
    remote: live.info.remote,
    initiator: live.info.initiator,
    frameBytesMax,
    // One kind byte rides in front of the frame inside the cell.
    mtuBytes: fragment.payloadBytes(ctx.settings.innerBytes) - 1,
    send: Table.sessionSend(unsafeSend),
    unsafeSend,
    frames: Mailbox.toStream(live.inbox),
    receive: Inbound.receive(live),
    closed: Deferred.await(live.closedSignal),
    close: Effect.suspend(() => {
      if (!live.open) return Effect.void
      closeLocal(ctx, live)
      return sendSealedQuiet(ctx, live, closeFrame)
    })
  }
}

interface Established {
  readonly address: Address
  readonly peer: NodeId.NodeId
  readonly initiator: boolean
  readonly keys: Keys
  readonly confirming: Confirming | undefined
  readonly replace: boolean
  /** Inner cells, already authenticated under `keys`, that arrived before the session was installed. */
  readonly early: ReadonlyArray<Uint8Array>
}

const newLive = (ctx: Ctx, done: Established, inbox: Mailbox.Mailbox<Uint8Array>, closedSignal: Deferred.Deferred<void>): Live => {
  const nowMs = ctx.now()
  const state: LiveState = {
    info: { peer: done.peer, remote: done.address, initiator: done.initiator, establishedAtMs: nowMs },
    inbox, closedSignal, handler: undefined, keys: done.keys, previous: undefined, previousUntilMs: 0, next: undefined, nextSinceMs: 0,
    keysSinceMs: nowMs, confirming: done.confirming, rekeyRequested: false, rekeyNotBeforeMs: 0,
    lastInboundMs: nowMs, lastSentMs: nowMs, open: true
  }
  return Object.assign(state, { session: sessionOf(ctx, state) })
}

/** Installs the session a handshake produced (or keeps the one we already hold) and settles the dials. */
const register = (
  ctx: Ctx,
  done: Established,
  inbox: Mailbox.Mailbox<Uint8Array>,
  closedSignal: Deferred.Deferred<void>
): Live | undefined =>
  Table.register(ctx, done, (live) => closeLocal(ctx, live), () => newLive(ctx, done, inbox, closedSignal))

const establish = (ctx: Ctx, done: Established): Effect.Effect<void> =>
  Effect.gen(function*() {
    // Allocated first, so that checking the tables and registering happen with no yield in between.
    const inbox = yield* Mailbox.make<Uint8Array>({ capacity: ctx.settings.inboxFrames, strategy: "dropping" })
    const closedSignal = yield* Deferred.make<void>()
    const confirm = yield* Effect.sync(() => {
      const live = register(ctx, done, inbox, closedSignal)
      if (live === undefined) return rejectCells(ctx, done.early.length)
      const nowMs = ctx.now()
      for (const inner of done.early) {
        const frame = ctx.reassembler.accept(live.info.remote, inner, nowMs)
        // Early frames are data, keepalives or a close; nothing that needs work of its own is expected this early.
        if (frame !== undefined) onSessionFrame(ctx, live, frame, nowMs)
      }
      // Both sides speak at once under the new keys: the initiator's cell is its key confirmation (the
      // responder's session starts on it), the responder's tells the initiator it arrived.
      return sendSealedQuiet(ctx, live, keepaliveFrame)
    })
    if (confirm !== undefined) yield* confirm
  })

// ---------------------------------------------------------------------------------------------------
// Handshake: responder side

const respondersInFlight = (ctx: Ctx): number => {
  let count = 0
  for (const pending of ctx.pendings.values()) if (pending.responder !== undefined) count++
  return count
}

const admitsInit = (ctx: Ctx, pending: Pending | undefined, live: Live | undefined, peer: NodeId.NodeId): boolean =>
  (pending !== undefined || ctx.pendings.size < ctx.settings.handshakesMax) &&
  (live !== undefined || ctx.sessions.has(peer) || sessionsPromised(ctx, pending) < ctx.settings.peersMax)

// Sessions held plus responder handshakes that will each want one (this address's own not counted
// twice): admitting an INIT past peersMax would let the dialer's session open on CONFIRM while its
// key confirmation is later refused, leaving the dialer a dead session.
const sessionsPromised = (ctx: Ctx, pending: Pending | undefined): number =>
  ctx.sessions.size + respondersInFlight(ctx) - (pending?.responder !== undefined ? 1 : 0)

const cookieEpoch = (ctx: Ctx): number => Math.floor(ctx.now() / ctx.settings.cookieRotationMs)

/**
 * Under load an INIT must carry a valid cookie before any public-key work; undefined means proceed,
 * otherwise the (possibly empty) reply.
 */
const cookieGate = (ctx: Ctx, from: Address, frame: Uint8Array, init: hs.Init): Effect.Effect<void> | null | undefined => {
  if (init.cookie !== undefined) {
    const verdict = hs.checkCookie(ctx.cookieMaster, cookieEpoch(ctx), from, init.cookie)
    if (verdict === "ok") return undefined
    rejectFrame(ctx, frame, verdict === "expired" ? "cookiesExpired" : "cookiesInvalid")
    return null
  }
  if (respondersInFlight(ctx) < ctx.settings.handshakesBeforeCookie) return undefined
  ctx.counters.cookiesSent++
  return sendHandshake(ctx, from, hs.encodeCookie(init.nonce, hs.makeCookie(ctx.cookieMaster, cookieEpoch(ctx), from)))
}

/**
 * The encapsulation to the INIT's ephemeral key: the responder's first expensive step, once per fresh INIT.
 * After RESP went out, for a dialer met before, the encapsulation to its static key is made ahead.
 */
const respond = (
  ctx: Ctx,
  from: Address,
  frame: Uint8Array,
  init: hs.Init,
  replace: boolean
): Effect.Effect<void> | undefined => {
  hs.record(ctx.replays, init.nonce, init.timeMs)
  ctx.counters.responderHandshakes++
  const nonceR = ctx.random(hs.nonceBytes)
  const responded = hs.respond(ctx.suite, ctx.credentials, frame, init, nonceR, ctx.random(ctx.suite.kem.encapsulateRandomBytes))
  if (responded === undefined) return failHandshake(ctx, "identityFailures")
  let pending = ctx.pendings.get(from)
  if (pending === undefined) {
    pending = { deferred: Deferred.unsafeMake<Session, LinkError>(FiberId.none), initiator: undefined, responder: undefined }
    ctx.pendings.set(from, pending)
  }
  const flight = flightOf(ctx, responded.frame)
  const responder: Responder = {
    peer: NodeId.fromBytes(init.id), claimedId: init.id, responded, flight, keys: undefined, rekey: init.rekey, replace,
    sends: 1, sentAtMs: ctx.now(), early: [], ahead: undefined
  }
  pending.responder = responder
  // Under load (cookies in use) no work beyond RESP is done ahead for a dialer that may never send FINISH.
  const ahead = respondersInFlight(ctx) <= ctx.settings.handshakesBeforeCookie
  return Effect.zipRight(
    sendFlight(ctx, from, flight),
    Effect.sync(() => {
      if (ahead) responder.ahead = encapsulateAhead(ctx, dialerKey(responder.peer))
    })
  )
}

/** Whether this INIT is fresh: not stale, not a duplicate of one in progress, not one answered before. */
const freshInit = (ctx: Ctx, frame: Uint8Array, init: hs.Init, pending: Pending | undefined): boolean => {
  if (Math.abs(ctx.now() - init.timeMs) > ctx.settings.initMaxAgeMs) {
    rejectFrame(ctx, frame, "initsStale")
    return false
  }
  const inProgress = pending?.responder !== undefined && crypto.equalBytes(pending.responder.responded.nonceI, init.nonce)
  // A duplicate of an INIT in progress is not answered: the responder's own timer repeats RESP.
  if (inProgress || hs.isReplay(ctx.replays, init.nonce, init.timeMs)) {
    rejectFrame(ctx, frame, "handshakesReplayed")
    return false
  }
  return true
}

const onInit = (ctx: Ctx, from: Address, frame: Uint8Array): Effect.Effect<void> | undefined => {
  const init = hs.decodeInit(ctx.suite.kem, frame)
  if (init === undefined) return rejectFrame(ctx, frame, "framesMalformed")
  const peer = NodeId.fromBytes(init.id)
  if (peer === ctx.identity.id) return failHandshake(ctx, "identityFailures")
  const pending = ctx.pendings.get(from)
  if (!freshInit(ctx, frame, init, pending)) return undefined
  const live = ctx.byAddress.get(from)
  if (init.rekey && (live === undefined || live.info.peer !== peer)) return failHandshake(ctx, "identityFailures")
  const ours = pending?.initiator
  // Simultaneous dials: the lower node ID's handshake wins on both sides.
  if (ours !== undefined && !ours.rekey && !init.rekey && peer > ctx.identity.id) return void ctx.counters.handshakesCrossed++
  if (!admitsInit(ctx, pending, live, peer)) return failHandshake(ctx)
  const gate = cookieGate(ctx, from, frame, init)
  if (gate !== undefined) return gate ?? undefined
  if (ours !== undefined && pending !== undefined) pending.initiator = undefined
  return respond(ctx, from, frame, init, live !== undefined && !init.rekey)
}

/**
 * A FINISH for our RESP: the responder's second expensive step (a decapsulation and an encapsulation, then,
 * once CONFIRM went out, a certificate check), done only once its KEM ciphertext opened under the INIT's
 * ephemeral secret.
 */
const onFinish = (ctx: Ctx, from: Address, frame: Uint8Array): Effect.Effect<void> | undefined => {
  const nonces = hs.noncesOf(frame)
  if (nonces === undefined) return rejectFrame(ctx, frame, "framesMalformed")
  const responder = ctx.pendings.get(from)?.responder
  // After CONFIRM a FINISH is a copy: the timer repeats CONFIRM, a copy earns nothing.
  if (responder === undefined || responder.keys !== undefined || !matches(responder.responded, nonces)) {
    return rejectFrame(ctx, frame, "handshakesReplayed")
  }
  const ahead = responder.ahead
  responder.ahead = undefined
  const confirmed = hs.confirm(
    ctx.suite, ctx.credentials, ctx.certificates, responder.responded, responder.claimedId, frame,
    ctx.random(ctx.suite.kem.encapsulateRandomBytes), ahead
  )
  if (confirmed === "Malformed") return rejectFrame(ctx, frame, "framesMalformed")
  if (typeof confirmed === "string") return failHandshake(ctx, "identityFailures")
  const before = { flight: responder.flight, sends: responder.sends, sentAtMs: responder.sentAtMs }
  responder.keys = keysFor(ctx, confirmed.secrets, false)
  responder.flight = flightOf(ctx, confirmed.frame)
  responder.sends = 1
  responder.sentAtMs = ctx.now()
  return Effect.zipRight(
    sendFlight(ctx, from, responder.flight),
    Effect.sync(() => {
      // cert_I's signature, checked while CONFIRM travels and the initiator decapsulates. A forgery takes back
      // the keys (its key confirmation then opens under nothing): the handshake waits for FINISH again.
      if (confirmed.verifyPeer()) return rememberStaticKey(ctx, dialerKey(responder.peer), confirmed.peerStaticKey)
      Object.assign(responder, before, { keys: undefined })
      failHandshake(ctx, "identityFailures")
    })
  )
}

interface Nonces {
  readonly nonceI: Uint8Array
  readonly nonceR: Uint8Array
}

const matches = (handshake: Nonces, nonces: Nonces): boolean =>
  crypto.equalBytes(handshake.nonceI, nonces.nonceI) && crypto.equalBytes(handshake.nonceR, nonces.nonceR)

/** A rekey's first cell under the new keys: the responder switches, answers under them, and reads the cell. */
const rekeyCompleted = (
  ctx: Ctx,
  from: Address,
  responder: Responder,
  keys: Keys,
  inner: Uint8Array,
  nowMs: number
): Effect.Effect<void> | undefined => {
  ctx.pendings.delete(from)
  const live = ctx.byAddress.get(from)
  if (live === undefined || live.info.peer !== responder.peer) return failHandshake(ctx)
  switchKeys(ctx, live, keys, nowMs)
  live.lastInboundMs = nowMs
  const frame = ctx.reassembler.accept(from, inner, nowMs)
  const work = frame === undefined ? undefined : onSessionFrame(ctx, live, frame, nowMs)
  const answer = sendSealedQuiet(ctx, live, keepaliveFrame)
  return work === undefined ? answer : Effect.zipRight(answer, work)
}

/**
 * The initiator's first cell under a handshake's session keys: proof it decapsulated ct_C, so it holds
 * the static key of the certificate it sent. The session starts (or, for a rekey, the keys switch).
 */
const onConfirmation = (
  ctx: Ctx,
  from: Address,
  responder: Responder,
  keys: Keys,
  inner: Uint8Array,
  nowMs: number
): Effect.Effect<void> | undefined => {
  if (responder.rekey) return rekeyCompleted(ctx, from, responder, keys, inner, nowMs)
  if (responder.early.length >= ctx.settings.earlyCellsMax) return rejectCells(ctx, 1)
  responder.early.push(inner)
  return establish(ctx, {
    address: from, peer: responder.peer, initiator: false, keys, confirming: undefined, replace: responder.replace,
    early: responder.early
  })
}

// ---------------------------------------------------------------------------------------------------
// Handshake: initiator side

/**
 * A RESP for our INIT: decapsulation and an encapsulation to the static key cert_R names; FINISH goes out
 * and replaces INIT on the timer, and then cert_R's signature is checked (a cache hit or one verification).
 */
const onResp = (ctx: Ctx, from: Address, frame: Uint8Array): Effect.Effect<void> | undefined => {
  const nonces = hs.noncesOf(frame)
  if (nonces === undefined) return rejectFrame(ctx, frame, "framesMalformed")
  const initiator = ctx.pendings.get(from)?.initiator
  if (initiator === undefined || initiator.finished !== undefined || !crypto.equalBytes(initiator.state.nonce, nonces.nonceI)) {
    return rejectFrame(ctx, frame, "handshakesReplayed")
  }
  const ahead = initiator.ahead
  initiator.ahead = undefined
  const finished = hs.finish(
    ctx.suite, ctx.credentials, ctx.certificates, initiator.state, frame, ctx.random(ctx.suite.kem.encapsulateRandomBytes), ahead
  )
  if (finished === "Malformed") return rejectFrame(ctx, frame, "framesMalformed")
  // A bad RESP does not end the attempt: a forger with the PSK must not be able to cancel our dial.
  if (typeof finished === "string") return failHandshake(ctx, "identityFailures")
  if (initiator.rekey && ctx.byAddress.get(from)?.info.peer !== finished.peer) return failHandshake(ctx, "identityFailures")
  const before = { flight: initiator.flight, attempts: initiator.attempts, sentAtMs: initiator.sentAtMs }
  initiator.finished = finished
  initiator.flight = flightOf(ctx, finished.frame)
  initiator.attempts = 1
  initiator.sentAtMs = ctx.now()
  return Effect.zipRight(
    sendFlight(ctx, from, initiator.flight),
    Effect.sync(() => {
      // cert_R's signature, checked while the responder works on FINISH. A forgery puts the attempt back to
      // waiting for RESP, as if its RESP had never come.
      if (finished.verifyPeer()) return rememberStaticKey(ctx, dialedKey(from), finished.peerStaticKey)
      if (initiator.finished === finished) Object.assign(initiator, before, { finished: undefined })
      failHandshake(ctx, "identityFailures")
    })
  )
}

const confirmingOf = (ctx: Ctx, finished: hs.Finished): Confirming => ({
  nonceI: finished.nonceI, nonceR: finished.nonceR, sends: 1, sentAtMs: ctx.now()
})

/** A rekey's CONFIRM: the new keys wait until the responder uses them; our key confirmation goes out under them. */
const rekeyInitiated = (
  ctx: Ctx,
  from: Address,
  pending: Pending,
  finished: hs.Finished,
  secrets: hs.SessionSecrets
): Effect.Effect<void> | undefined => {
  pending.initiator = undefined
  if (pending.responder === undefined) ctx.pendings.delete(from)
  const live = ctx.byAddress.get(from)
  if (live === undefined || live.info.peer !== finished.peer) return failHandshake(ctx)
  live.next = keysFor(ctx, secrets, true)
  live.nextSinceMs = ctx.now()
  live.confirming = confirmingOf(ctx, finished)
  return sendConfirmation(ctx, live)
}

/** A CONFIRM matching no handshake in progress: a repeat because our key confirmation was lost, or a replay. */
const onStrayConfirm = (ctx: Ctx, from: Address, frame: Uint8Array, nonces: Nonces): Effect.Effect<void> | undefined => {
  const live = ctx.byAddress.get(from)
  if (live?.confirming !== undefined && matches(live.confirming, nonces)) return sendConfirmation(ctx, live)
  return rejectFrame(ctx, frame, "handshakesReplayed")
}

/** CONFIRM: proof the responder holds cert_R's static key. The session starts here on the initiator's side. */
const onConfirm = (ctx: Ctx, from: Address, frame: Uint8Array): Effect.Effect<void> | undefined => {
  const nonces = hs.noncesOf(frame)
  if (nonces === undefined) return rejectFrame(ctx, frame, "framesMalformed")
  const pending = ctx.pendings.get(from)
  const initiator = pending?.initiator
  const finished = initiator?.finished
  if (pending === undefined || initiator === undefined || finished === undefined || !matches(finished, nonces)) {
    return onStrayConfirm(ctx, from, frame, nonces)
  }
  // Checked already, as FINISH went out (cells are handled one after another); asked again so that no order of
  // events can start a session with an unchecked responder.
  if (!finished.verifyPeer()) return rejectFrame(ctx, frame)
  const secrets = hs.complete(ctx.suite, ctx.credentials, finished, frame)
  if (secrets === "Malformed") return rejectFrame(ctx, frame, "framesMalformed")
  // A CONFIRM that does not open (a man in the middle without cert_R's key) does not end the attempt either.
  if (typeof secrets === "string") return failHandshake(ctx, "identityFailures")
  if (initiator.rekey) return rekeyInitiated(ctx, from, pending, finished, secrets)
  return establish(ctx, {
    address: from, peer: finished.peer, initiator: true, keys: keysFor(ctx, secrets, true),
    confirming: confirmingOf(ctx, finished), replace: false, early: []
  })
}

const onCookie = (ctx: Ctx, from: Address, frame: Uint8Array): Effect.Effect<void> | undefined => {
  const cookie = hs.decodeCookie(frame)
  if (cookie === undefined) return rejectFrame(ctx, frame, "framesMalformed")
  const initiator = ctx.pendings.get(from)?.initiator
  if (initiator === undefined || initiator.finished !== undefined || !crypto.equalBytes(initiator.state.nonce, cookie.nonce)) {
    return rejectFrame(ctx, frame, "handshakesReplayed")
  }
  const first = initiator.cookie === undefined
  initiator.cookie = cookie.cookie
  initiator.flight = flightOf(ctx, hs.encodeInit(ctx.suite.kem, { ...initiator.fields, cookie: cookie.cookie }))
  // Only the first cookie triggers an immediate retry, so two nodes can never ping-pong INIT and COOKIE.
  if (!first) return undefined
  initiator.sentAtMs = ctx.now()
  return sendFlight(ctx, from, initiator.flight)
}

/** An ephemeral key pair never used before: the spare if there is one, else a new one. */
const ephemeral = (ctx: Ctx): crypto.KemKeyPair => {
  const spare = ctx.spare
  ctx.spare = undefined
  return spare ?? ctx.suite.kem.keygen(ctx.random(ctx.suite.kem.seedBytes))
}

/**
 * Work done right after an INIT went out, while the responder works on it: the encapsulation to the static
 * key last seen at this address (if RESP is not already handled), then the next dial's key pair, so neither
 * costs a critical path.
 */
const workWhileWaiting = (ctx: Ctx, address: Address, initiator: Initiator): Effect.Effect<void> =>
  Effect.sync(() => {
    if (ctx.closing) return
    if (initiator.finished === undefined && ctx.pendings.get(address)?.initiator === initiator) {
      initiator.ahead = encapsulateAhead(ctx, dialedKey(address))
    }
    if (ctx.spare === undefined) ctx.spare = ctx.suite.kem.keygen(ctx.random(ctx.suite.kem.seedBytes))
  })

/** A fresh INIT: ephemeral X-Wing keys (forward secrecy) and a fresh nonce. */
const newInitiator = (ctx: Ctx, rekey: boolean): Initiator => {
  const keyPair = ephemeral(ctx)
  const fields: hs.Init = {
    rekey, id: NodeId.toBytes(ctx.identity.id), nonce: ctx.random(hs.nonceBytes), timeMs: ctx.now(),
    publicKey: keyPair.publicKey, cookie: undefined
  }
  const init = hs.encodeInit(ctx.suite.kem, fields)
  return {
    rekey, fields, state: { initFrame: init, nonce: fields.nonce, keyPair }, flight: flightOf(ctx, init), cookie: undefined,
    finished: undefined, ahead: undefined, attempts: 1, sentAtMs: ctx.now()
  }
}

const joinOrRefuse = (ctx: Ctx, address: Address): Effect.Effect<Session, LinkError> | undefined =>
  Table.joinOrRefuse(ctx, address)

const dial = (ctx: Ctx, address: Address): Effect.Effect<Session, LinkError> =>
  Effect.suspend(() => {
    const joined = joinOrRefuse(ctx, address)
    if (joined !== undefined) return joined
    const initiator = newInitiator(ctx, false)
    const deferred = Deferred.unsafeMake<Session, LinkError>(FiberId.none)
    ctx.pendings.set(address, { deferred, initiator, responder: undefined })
    // The handshake belongs to the link, not to this caller: interrupting the wait leaves it running.
    return sendFlight(ctx, address, initiator.flight).pipe(
      Effect.zipRight(workWhileWaiting(ctx, address, initiator)),
      Effect.zipRight(Deferred.await(deferred))
    )
  })

/** The session's initiator starts a rekey handshake over the live session. */
const startRekey = (ctx: Ctx, live: Live, nowMs: number): Effect.Effect<void> | undefined => {
  const address = live.info.remote
  if (live.next !== undefined || ctx.pendings.has(address) || ctx.pendings.size >= ctx.settings.handshakesMax) return undefined
  live.rekeyRequested = false
  live.rekeyNotBeforeMs = nowMs + ctx.settings.attemptMs * (ctx.settings.attemptsMax + 1)
  const initiator = newInitiator(ctx, true)
  ctx.pendings.set(address, { deferred: Deferred.unsafeMake(FiberId.none), initiator, responder: undefined })
  return sendFlight(ctx, address, initiator.flight)
}

// ---------------------------------------------------------------------------------------------------
// Inbound

const onSessionFrame = (ctx: Ctx, live: Live, frame: Uint8Array, nowMs: number): Effect.Effect<void> | undefined => {
  switch (frame[0]) {
    case Kind.Data:
      if (frame.length - 1 > ctx.settings.frameBytesMax) return rejectFrame(ctx, frame, "framesMalformed")
      if (Inbound.deliver(live, frame.subarray(1))) ctx.counters.framesReceived++
      else ctx.counters.framesDroppedInboxFull++
      return undefined
    case Kind.Keepalive:
      return undefined
    case Kind.Close:
      return void closeLocal(ctx, live)
    case Kind.RekeyRequest:
      live.rekeyRequested = true
      return live.info.initiator && nowMs >= live.rekeyNotBeforeMs ? startRekey(ctx, live, nowMs) : undefined
    default:
      return rejectFrame(ctx, frame, "framesMalformed")
  }
}

type Opened = Uint8Array | "Refused" | "NotOurs"

const refuseCell = (ctx: Ctx, counter: keyof Security): "Refused" => {
  ctx.counters[counter]++
  rejectCells(ctx, 1)
  return "Refused"
}

/** Opens a data cell under one key generation: NotOurs if its header check fails. */
const openUnder = (ctx: Ctx, opener: crypto.Opener, cell: Uint8Array): Opened => {
  const pn = crypto.packetNumberOf(opener, cell)
  if (pn === undefined) return "NotOurs"
  if (!crypto.replayFresh(opener.window, pn)) return refuseCell(ctx, "cellsReplayed")
  const inner = crypto.openData(opener, cell, pn)
  if (inner === undefined) return refuseCell(ctx, "cellsTampered")
  crypto.replayMark(opener.window, pn)
  return inner
}

/** Tries the session's key generations (current, then a rekey's next, then the previous in grace). */
const openSession = (ctx: Ctx, live: LiveState, cell: Uint8Array, nowMs: number): Opened => {
  const current = openUnder(ctx, live.keys.opener, cell)
  if (current !== "NotOurs") {
    // The responder sealed under the keys CONFIRM gave, so our key confirmation arrived: stop repeating it.
    if (current !== "Refused" && live.next === undefined) live.confirming = undefined
    return current
  }
  const next = live.next
  if (next !== undefined) {
    const opened = openUnder(ctx, next.opener, cell)
    if (opened !== "NotOurs") {
      if (opened !== "Refused") promote(ctx, live, next, nowMs)
      return opened
    }
  }
  if (live.previous !== undefined && nowMs < live.previousUntilMs) return openUnder(ctx, live.previous, cell)
  return "NotOurs"
}

/** One cell from a live session's address: NotOurs if no key of the session opens it. */
const onSessionCell = (ctx: Ctx, live: Live, cell: Uint8Array, nowMs: number): Effect.Effect<void> | undefined | "NotOurs" => {
  const inner = openSession(ctx, live, cell, nowMs)
  if (typeof inner === "string") return inner === "NotOurs" ? inner : undefined
  live.lastInboundMs = nowMs
  const frame = ctx.reassembler.accept(live.info.remote, inner, nowMs)
  return frame === undefined ? undefined : onSessionFrame(ctx, live, frame, nowMs)
}

const onHandshakeFrame = (ctx: Ctx, from: Address, frame: Uint8Array): Effect.Effect<void> | undefined => {
  switch (frame[0]) {
    case Kind.Init:
      return onInit(ctx, from, frame)
    case Kind.Resp:
      return onResp(ctx, from, frame)
    case Kind.Finish:
      return onFinish(ctx, from, frame)
    case Kind.Confirm:
      return onConfirm(ctx, from, frame)
    case Kind.Cookie:
      return onCookie(ctx, from, frame)
    default:
      // Session frames never travel under the PSK alone: the PSK admits, it does not authenticate a session.
      return rejectFrame(ctx, frame, "framesMalformed")
  }
}

/**
 * A cell neither the PSK nor a session opens: if a handshake from that address has sent CONFIRM, it may
 * be the initiator's first cell under the session keys, which completes the handshake.
 */
const unopened = (ctx: Ctx, from: Address, cell: Uint8Array, nowMs: number): Effect.Effect<void> | undefined => {
  const responder = ctx.pendings.get(from)?.responder
  const keys = responder?.keys
  const inner = keys === undefined ? "NotOurs" : openUnder(ctx, keys.opener, cell)
  if (inner === "NotOurs") {
    ctx.counters.cellsUnauthenticated++
    return rejectCells(ctx, 1)
  }
  if (inner === "Refused" || responder === undefined || keys === undefined) return undefined
  return onConfirmation(ctx, from, responder, keys, inner, nowMs)
}

/** Handles one cell; returns the work that must run before the next cell, if any (handshakes only). */
const onDatagram = (ctx: Ctx, datagram: Datagram, nowMs: number): Effect.Effect<void> | undefined => {
  if (ctx.closing) return undefined
  const { cell, from } = datagram
  if (cell.length !== ctx.settings.cellBytes) {
    ctx.counters.cellsWrongSize++
    return rejectCells(ctx, 1)
  }
  const live = ctx.byAddress.get(from)
  if (live !== undefined) {
    const work = onSessionCell(ctx, live, cell, nowMs)
    if (work !== "NotOurs") return work
  }
  const inner = crypto.openHandshakeCell(ctx.suite.psk, cell)
  if (inner === undefined) return unopened(ctx, from, cell, nowMs)
  const frame = ctx.handshakeReassembler.accept(from, inner, nowMs)
  return frame === undefined ? undefined : onHandshakeFrame(ctx, from, frame)
}

/** One chunk of cells, in order; plain code per cell, an Effect only where a handshake needs one. */
const onChunk = (ctx: Ctx, chunk: Chunk.Chunk<Datagram>): Effect.Effect<void> =>
  Table.onChunk(chunk, ctx.now, (datagram, nowMs) => onDatagram(ctx, datagram, nowMs))

// ---------------------------------------------------------------------------------------------------
// Timers

type Outbox = Array<Effect.Effect<void>>

const tickInitiator = (ctx: Ctx, address: Address, pending: Pending, nowMs: number, outbox: Outbox): void => {
  const initiator = pending.initiator
  if (initiator === undefined || nowMs - initiator.sentAtMs < ctx.settings.attemptMs) return
  if (initiator.attempts < ctx.settings.attemptsMax) {
    initiator.attempts++
    initiator.sentAtMs = nowMs
    outbox.push(sendFlight(ctx, address, initiator.flight))
  } else {
    pending.initiator = undefined
    failHandshake(ctx)
  }
}

const tickResponder = (ctx: Ctx, address: Address, pending: Pending, nowMs: number, outbox: Outbox): void => {
  const responder = pending.responder
  if (responder === undefined || nowMs - responder.sentAtMs < ctx.settings.attemptMs) return
  if (responder.sends < ctx.settings.attemptsMax) {
    responder.sends++
    responder.sentAtMs = nowMs
    outbox.push(sendFlight(ctx, address, responder.flight))
  } else {
    pending.responder = undefined
    rejectCells(ctx, responder.early.length)
    failHandshake(ctx)
  }
}

const tickHandshake = (ctx: Ctx, address: Address, pending: Pending, nowMs: number, outbox: Outbox): void => {
  tickInitiator(ctx, address, pending, nowMs, outbox)
  tickResponder(ctx, address, pending, nowMs, outbox)
  if (pending.initiator === undefined && pending.responder === undefined) {
    ctx.pendings.delete(address)
    Deferred.unsafeDone(pending.deferred, Exit.fail(new LinkError({ reason: "Timeout", detail: address })))
  }
}

const tickRekey = (ctx: Ctx, live: Live, nowMs: number, outbox: Outbox): void => {
  const { attemptMs, attemptsMax, rekeyAfterCells, rekeyAfterMs } = ctx.settings
  if (live.previous !== undefined && nowMs >= live.previousUntilMs) live.previous = undefined
  // A rekey whose key confirmation never got through: give up on it, so a later one can start.
  if (live.next !== undefined && nowMs - live.nextSinceMs >= attemptMs * (attemptsMax + 1)) {
    live.next = undefined
    live.confirming = undefined
    failHandshake(ctx)
  }
  if (nowMs < live.rekeyNotBeforeMs) return
  const worn = live.keys.sealer.nextPn >= rekeyAfterCells
  if (live.info.initiator) {
    if (worn || live.rekeyRequested || nowMs - live.keysSinceMs >= rekeyAfterMs) {
      const work = startRekey(ctx, live, nowMs)
      if (work !== undefined) outbox.push(work)
    }
  } else if (worn) {
    live.rekeyNotBeforeMs = nowMs + attemptMs
    outbox.push(sendSealedQuiet(ctx, live, rekeyRequestFrame))
  }
}

/**
 * The initiator's key confirmation is repeated until the responder answers under the new keys, at most
 * `handshakeAttemptsMax` times (the responder's repeated CONFIRM dies in reassembly as a duplicate, so it
 * cannot ask); after that a session the responder never installed dies by idle timeout.
 */
const tickConfirmation = (ctx: Ctx, live: Live, nowMs: number, outbox: Outbox): void => {
  const confirming = live.confirming
  if (confirming === undefined || nowMs - confirming.sentAtMs < ctx.settings.attemptMs) return
  if (confirming.sends >= ctx.settings.attemptsMax) return void (live.confirming = undefined)
  confirming.sends++
  confirming.sentAtMs = nowMs
  outbox.push(sendConfirmation(ctx, live))
}

const tickSession = (ctx: Ctx, live: Live, nowMs: number, outbox: Outbox): void => {
  tickConfirmation(ctx, live, nowMs, outbox)
  if (nowMs - live.lastInboundMs >= ctx.settings.idleMs) {
    closeLocal(ctx, live)
    outbox.push(sendSealedQuiet(ctx, live, closeFrame))
    return
  }
  if (nowMs - live.lastSentMs >= ctx.settings.keepaliveMs) outbox.push(sendSealedQuiet(ctx, live, keepaliveFrame))
  tickRekey(ctx, live, nowMs, outbox)
}

const tick = (ctx: Ctx): Effect.Effect<void> =>
  Effect.suspend(() => {
    const nowMs = ctx.now()
    const outbox: Outbox = []
    for (const [address, pending] of ctx.pendings) tickHandshake(ctx, address, pending, nowMs, outbox)
    for (const live of ctx.byAddress.values()) tickSession(ctx, live, nowMs, outbox)
    ctx.reassembler.sweep(nowMs)
    ctx.handshakeReassembler.sweep(nowMs)
    hs.sweepReplays(ctx.replays, nowMs - ctx.settings.initMaxAgeMs)
    return Effect.all(outbox, { discard: true })
  })

// ---------------------------------------------------------------------------------------------------
// Construction

const settingsOf = (limits: Limits["Type"], cellBytes: number): Settings => {
  const attemptMs = Duration.toMillis(limits.handshakeAttemptTimeout)
  const idleMs = Duration.toMillis(limits.sessionIdleTimeout)
  const keepaliveMs = Duration.toMillis(limits.keepaliveInterval)
  const reassemblyMs = Duration.toMillis(limits.reassemblyTimeout)
  return {
    cellBytes,
    innerBytes: cellBytes - crypto.overheadBytes,
    frameBytesMax: limits.frameBytesMax,
    peersMax: limits.peersMax,
    handshakesMax: limits.handshakesInFlightMax,
    attemptMs,
    attemptsMax: limits.handshakeAttemptsMax,
    idleMs,
    keepaliveMs,
    inboxFrames: limits.sessionInboxFrames,
    earlyCellsMax: limits.handshakeEarlyFramesMax,
    rekeyAfterCells: limits.rekeyAfterCells,
    rekeyAfterMs: Duration.toMillis(limits.rekeyAfter),
    rekeyGraceMs: Duration.toMillis(limits.rekeyGracePeriod),
    replayWindowCells: limits.replayWindowCells,
    cookieRotationMs: Math.max(1, Duration.toMillis(limits.cookieRotation)),
    handshakesBeforeCookie: limits.handshakesBeforeCookie,
    initMaxAgeMs: Duration.toMillis(limits.handshakeInitMaxAge),
    staticKeysKnownMax: limits.staticKeysKnownMax,
    // Timers are checked by one periodic sweep, so each fires at most a quarter of its period late.
    tickMs: Math.max(1, Math.min(attemptMs, idleMs, keepaliveMs, reassemblyMs) / 4)
  }
}

const shutdown = (ctx: Ctx): Effect.Effect<void> =>
  Effect.suspend(() => {
    const lives = Table.shutdown(ctx, (live) => closeLocal(ctx, live))
    return Effect.forEach(lives, (live) => sendSealedQuiet(ctx, live, closeFrame), { discard: true })
  })

const securityOf = (counters: Counters, handshakeCellsDuplicate: number): SecurityStats => ({
  cellsWrongSize: counters.cellsWrongSize,
  cellsUnauthenticated: counters.cellsUnauthenticated,
  cellsTampered: counters.cellsTampered,
  cellsReplayed: counters.cellsReplayed,
  framesMalformed: counters.framesMalformed,
  handshakesReplayed: counters.handshakesReplayed,
  handshakeCellsDuplicate,
  initsStale: counters.initsStale,
  identityFailures: counters.identityFailures,
  handshakesCrossed: counters.handshakesCrossed,
  cookiesSent: counters.cookiesSent,
  cookiesExpired: counters.cookiesExpired,
  cookiesInvalid: counters.cookiesInvalid,
  responderHandshakes: counters.responderHandshakes,
  rekeys: counters.rekeys
})

const serviceOf = (ctx: Ctx): Service => ({
  local: ctx.identity.id,
  address: ctx.endpoint.address,
  dial: (address) => dial(ctx, address),
  sessions: Mailbox.toStream(ctx.accepted),
  peers: Effect.sync(() => Table.peers(ctx)),
  stats: Effect.sync((): Stats => {
    const data = ctx.reassembler.stats()
    const handshake = ctx.handshakeReassembler.stats()
    const { counters } = ctx
    return {
      sessionsOpened: counters.sessionsOpened,
      sessionsClosed: counters.sessionsClosed,
      handshakesFailed: counters.handshakesFailed,
      cellsRejected: counters.cellsRejected + data.cellsRejected + handshake.cellsRejected,
      framesSent: counters.framesSent,
      framesReceived: counters.framesReceived,
      framesDroppedInboxFull: counters.framesDroppedInboxFull,
      reassembliesDropped: data.partialsDropped + handshake.partialsDropped
    }
  }),
  security: Effect.sync(() => securityOf(ctx.counters, ctx.handshakeReassembler.stats().cellsDuplicate)),
  tables: Effect.sync(() => {
    const size = ctx.reassembler.size()
    return {
      sessions: ctx.sessions.size,
      handshakes: ctx.pendings.size,
      reassemblyAddresses: size.addresses,
      reassemblyPartials: size.partials + ctx.handshakeReassembler.size().partials,
      handshakeReassemblyAddresses: ctx.handshakeReassembler.size().addresses,
      replayCacheEntries: ctx.replays.seen.size
    }
  })
})

const zeroCounters = (): Counters => ({
  sessionsOpened: 0, sessionsClosed: 0, handshakesFailed: 0, cellsRejected: 0,
  framesSent: 0, framesReceived: 0, framesDroppedInboxFull: 0,
  cellsWrongSize: 0, cellsUnauthenticated: 0, cellsTampered: 0, cellsReplayed: 0, framesMalformed: 0,
  handshakesReplayed: 0, initsStale: 0, identityFailures: 0, handshakesCrossed: 0,
  cookiesSent: 0, cookiesExpired: 0, cookiesInvalid: 0, responderHandshakes: 0, rekeys: 0
})

const reassemblers = (limits: Limits["Type"], settings: Settings, suite: hs.Suite) => {
  const timeoutMs = Duration.toMillis(limits.reassemblyTimeout)
  const handshakeFrameMax = Math.max(hs.initBytes(suite.kem), hs.respBytes(suite), hs.finishBytes(suite), hs.confirmBytes(suite))
  return {
    reassembler: fragment.makeReassembler({
      cellBytes: settings.innerBytes,
      frameBytesMax: settings.frameBytesMax + 1,
      partialsPerAddressMax: limits.reassembliesPerPeerMax,
      addressesMax: limits.peersMax,
      timeoutMs
    }),
    // Separate from the sessions': PSK holders (or replays of their cells) cannot disturb session frames.
    handshakeReassembler: fragment.makeReassembler({
      cellBytes: settings.innerBytes,
      frameBytesMax: handshakeFrameMax,
      partialsPerAddressMax: 2,
      addressesMax: limits.handshakesInFlightMax,
      timeoutMs
    })
  }
}

/** A secure link with the given parts (tests pass cheap or counting ones; nodes use `make`). */
export const makeWith = (
  options: Options,
  parts: Parts = {}
): Effect.Effect<Service, never, Transport | Identity.NodeIdentity | Limits | Scope.Scope> =>
  Effect.gen(function*() {
    if (options.psk.length !== pskBytes) return yield* Effect.dieMessage(`LinkSecure: the PSK must be ${pskBytes} bytes`)
    const endpoint = yield* Transport
    const identity = yield* Identity.NodeIdentity
    const limits = yield* Limits
    const clock = yield* Effect.clock
    const settings = settingsOf(limits, endpoint.capabilities.cellBytes)
    const suite: hs.Suite = { psk: options.psk.slice(), kem: parts.kem ?? crypto.xwing, signatures: parts.signatures ?? mlDsa65 }
    // Entropy, when the node provides it (a simulation's seeded stream); else the OS CSPRNG.
    const entropy = yield* Effect.serviceOption(Entropy)
    const random = parts.randomBytes ??
      (Option.isSome(entropy) ? entropy.value.bytes : ((length: number) => new Uint8Array(cryptoRandomBytes(length))))
    // The certificate is signed here, once: handshakes authenticate by KEM, with no signature of their own.
    const credentials = hs.makeCredentials(suite, identity)
    const ctx: Ctx = {
      endpoint, identity, suite, credentials, random, settings,
      certificates: hs.makeCertificateCache(limits.certificateCacheEntriesMax),
      staticKeys: new Map(),
      cookieMaster: random(32),
      now: () => clock.unsafeCurrentTimeMillis(),
      ...reassemblers(limits, settings, suite),
      replays: hs.makeReplayCache(limits.initReplayCacheEntries),
      sessions: new Map(),
      byAddress: new Map(),
      pendings: new Map(),
      accepted: yield* Mailbox.make<Session>({ capacity: limits.peersMax, strategy: "sliding" }),
      counters: zeroCounters(),
      spare: undefined,
      frameId: new DataView(random(4).buffer).getUint32(0),
      closing: false
    }
    yield* endpoint.receive.pipe(
      Stream.runForEachChunk((chunk) => onChunk(ctx, chunk)),
      Effect.catchAllCause((cause) => Effect.logWarning("link receive loop ended", cause)),
      Effect.forkScoped
    )
    yield* tick(ctx).pipe(Effect.delay(Duration.millis(settings.tickMs)), Effect.forever, Effect.forkScoped)
    yield* Effect.addFinalizer(() => shutdown(ctx))
    return serviceOf(ctx)
  }).pipe(Effect.annotateLogs({ component: "LinkSecure" }))

/**
 * A secure link over the node's transport, with X-Wing, ML-DSA-65 and node:crypto randomness. Making it
 * costs one static key generation and one ML-DSA-65 signature (the node's certificate).
 */
export const make = (options: Options): Effect.Effect<Service, never, Transport | Identity.NodeIdentity | Limits | Scope.Scope> =>
  makeWith(options)

/** The `Link` service backed by `LinkSecure`. */
export const layer = (options: Options): Layer.Layer<Link, never, Transport | Identity.NodeIdentity | Limits> =>
  Layer.scoped(Link, make(options))
