/**
 * `LinkPlain`: the foundation's link. Sessions are **authenticated, not encrypted**: each side proves
 * its node identity with an ML-DSA-65 challenge–response, but the cells that follow travel in clear and
 * are not authenticated one by one. For the memory and simulated transports and trusted networks; the
 * PSK-gated post-quantum secure link replaces it behind the same `Link` contract.
 *
 * A link frame is a kind byte and a body, cut into cells by `internal/fragment.ts`:
 *
 * | kind | body |
 * |---|---|
 * | 1 HELLO | idA(32) ‖ nonceA(32) ‖ publicKeyA |
 * | 2 HELLO_ACK | idB(32) ‖ nonceA ‖ nonceB(32) ‖ publicKeyB ‖ sig_B(transcript("ack")) |
 * | 3 CONFIRM | nonceA ‖ nonceB ‖ sig_A(transcript("confirm")) |
 * | 4 DATA | the session's frame |
 * | 5 KEEPALIVE | — |
 * | 6 CLOSE | — |
 *
 * `transcript(label) = "weft-link-plain-v1" ‖ label ‖ nonceA ‖ nonceB ‖ idA ‖ idB` binds both identities
 * and both nonces. The initiator (A) holds its session once HELLO_ACK verifies; the responder (B) once
 * CONFIRM verifies. Each side signs once and verifies once per handshake: a retransmitted HELLO gets the
 * cached HELLO_ACK, a retransmitted HELLO_ACK (the responder repeats it until CONFIRM arrives) gets the
 * cached CONFIRM.
 *
 * One session per peer: concurrent dials of an address share one handshake; when two nodes dial each
 * other both handshakes run, the first to complete on each side gives that side its session, and the
 * other's late messages are ignored. A HELLO from a peer we hold a session with, while we are not
 * dialing it, means the peer lost its side (it restarted): when that handshake completes it replaces
 * our session (closed locally, without a CLOSE that would reach the peer's new session).
 *
 * Not for hostile networks: cells after the handshake carry no authentication (whoever can spoof a
 * peer's address can inject DATA or CLOSE), and a responder signs for every fresh HELLO (no cookie).
 *
 * The secure link keeps this shape and swaps two things: the handshake messages, and a seal/open step
 * per cell where the comments below say so.
 */
import type { Scope } from "effect"
import { Chunk, Context, Deferred, Duration, Effect, Exit, Layer, Mailbox, Random, Stream } from "effect"
import * as Identity from "./Identity.js"
import { concat, equalBytes } from "./internal/bytes.js"
import * as fragment from "./internal/fragment.js"
import * as Table from "./internal/linkTable.js"
import * as Inbound from "./internal/sessionInbound.js"
import { Limits } from "./Limits.js"
import type { Session, SessionInfo, Stats } from "./Link.js"
import { Link } from "./Link.js"
import * as NodeId from "./NodeId.js"
import type { Address, Datagram, Endpoint } from "./Transport.js"
import { Transport } from "./Transport.js"
import type { TransportError } from "./WeftError.js"
import { LinkError } from "./WeftError.js"

/** The signature scheme the handshake uses; a parameter so tests can count or cheapen its operations. */
export interface Signatures {
  readonly publicKeyBytes: number
  readonly signatureBytes: number
  readonly sign: (identity: Identity.Identity, message: Uint8Array) => Uint8Array
  /** Must never throw. */
  readonly verify: (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean
}

/** ML-DSA-65 through `Identity`: the scheme `make` and `layer` use. */
export const mlDsa65: Signatures = {
  publicKeyBytes: Identity.publicKeyBytes,
  signatureBytes: Identity.signatureBytes,
  sign: Identity.sign,
  verify: Identity.verify
}

/** How much state the link holds, for tests and metrics that check it stays bounded. */
export interface Tables {
  readonly sessions: number
  readonly handshakes: number
  readonly reassemblyAddresses: number
  readonly reassemblyPartials: number
}

/** The `Link` service as `LinkPlain` provides it, plus its table sizes. */
export type Service = Context.Tag.Service<Link> & { readonly tables: Effect.Effect<Tables> }

const Kind = { Hello: 1, HelloAck: 2, Confirm: 3, Data: 4, Keepalive: 5, Close: 6 } as const

const nonceBytes = 32
const idBytes = 32
const text = new TextEncoder()
const protocolLabel = text.encode("weft-link-plain-v1")
const ackLabel = text.encode("ack")
const confirmLabel = text.encode("confirm")
const keepaliveFrame = new Uint8Array([Kind.Keepalive])
const closeFrame = new Uint8Array([Kind.Close])

interface Settings {
  readonly cellBytes: number
  readonly frameBytesMax: number
  readonly peersMax: number
  readonly handshakesMax: number
  readonly attemptMs: number
  readonly attemptsMax: number
  readonly idleMs: number
  readonly keepaliveMs: number
  readonly inboxFrames: number
  readonly earlyFramesMax: number
  readonly tickMs: number
}

/** Our side of a handshake we started. */
interface Initiator {
  readonly nonce: Uint8Array
  readonly hello: Uint8Array
  attempts: number
  sentAtMs: number
}

/** Our side of a handshake a peer started: everything CONFIRM is checked against, and the cached reply. */
interface Responder {
  readonly peer: NodeId.NodeId
  readonly publicKey: Uint8Array
  readonly nonceA: Uint8Array
  readonly nonceB: Uint8Array
  readonly ack: Uint8Array
  /** The peer held a session with us when it said HELLO: it lost it (restart), so ours is replaced. */
  readonly replace: boolean
  sends: number
  sentAtMs: number
  /**
   * DATA frames that arrived before CONFIRM (cells are reordered: the dialer's first frame may overtake
   * its own CONFIRM); delivered if CONFIRM verifies, dropped with the handshake otherwise.
   */
  readonly early: Array<Uint8Array>
}

/** Handshakes in progress with one address; both roles at once when two nodes dial each other. */
interface Pending {
  readonly deferred: Deferred.Deferred<Session, LinkError>
  initiator: Initiator | undefined
  responder: Responder | undefined
}

/** A session's state; `Live` adds the `Session` handed out, which closes over this state. */
interface LiveState {
  readonly info: SessionInfo
  readonly inbox: Mailbox.Mailbox<Uint8Array>
  readonly closedSignal: Deferred.Deferred<void>
  /** Set while a layer above takes frames with `Session.receive`. */
  handler: ((frame: Uint8Array) => void) | undefined
  readonly nonceA: Uint8Array
  readonly nonceB: Uint8Array
  /** The CONFIRM we sent (initiator only), repeated if the responder repeats its HELLO_ACK. */
  readonly confirm: Uint8Array | undefined
  lastInboundMs: number
  lastSentMs: number
  open: boolean
}

interface Live extends LiveState {
  readonly session: Session
}

interface Counters {
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
  readonly signatures: Signatures
  readonly settings: Settings
  readonly now: () => number
  readonly reassembler: fragment.Reassembler
  readonly sessions: Map<NodeId.NodeId, Live>
  readonly byAddress: Map<Address, Live>
  readonly pendings: Map<Address, Pending>
  readonly accepted: Mailbox.Mailbox<Session>
  readonly counters: Counters
  frameId: number
  closing: boolean
}

// ---------------------------------------------------------------------------------------------------
// Bytes

const frameOf = (kind: number, ...parts: ReadonlyArray<Uint8Array>): Uint8Array =>
  concat([new Uint8Array([kind]), ...parts])


const transcript = (
  label: Uint8Array,
  nonceA: Uint8Array,
  nonceB: Uint8Array,
  idA: NodeId.NodeId,
  idB: NodeId.NodeId
): Uint8Array => concat([protocolLabel, label, nonceA, nonceB, NodeId.toBytes(idA), NodeId.toBytes(idB)])

/** Nonces come from the Random service, so a seeded simulation replays its handshakes exactly. */
const randomNonce: Effect.Effect<Uint8Array> = Effect.gen(function*() {
  const out = new Uint8Array(nonceBytes)
  for (let index = 0; index < nonceBytes; index += 4) {
    const word = Math.floor((yield* Random.next) * 0x1_0000_0000)
    out[index] = word >>> 24
    out[index + 1] = word >>> 16
    out[index + 2] = word >>> 8
    out[index + 3] = word
  }
  return out
})

const helloBytes = (s: Signatures) => 1 + idBytes + nonceBytes + s.publicKeyBytes
const ackBytes = (s: Signatures) => 1 + idBytes + 2 * nonceBytes + s.publicKeyBytes + s.signatureBytes
const confirmBytes = (s: Signatures) => 1 + 2 * nonceBytes + s.signatureBytes

/** A claimed node ID (32 bytes) and a public key, accepted only if the key hashes to the ID. */
const claimedPeer = (claimed: Uint8Array, publicKey: Uint8Array): NodeId.NodeId | undefined => {
  const peer = NodeId.fromPublicKey(publicKey)
  return equalBytes(NodeId.toBytes(peer), claimed) ? peer : undefined
}

// ---------------------------------------------------------------------------------------------------
// Sending

const unsafeSendFrame = (ctx: Ctx, to: Address, frame: Uint8Array): TransportError | undefined => {
  ctx.frameId = (ctx.frameId + 1) >>> 0
  // The secure link seals each cell here; LinkPlain sends them as cut.
  const cells = fragment.cut(frame, ctx.frameId, ctx.settings.cellBytes)
  for (const cell of cells) {
    const error = ctx.endpoint.unsafeSend(to, cell)
    if (error !== undefined) return error
  }
  return undefined
}

const sendFrame = (ctx: Ctx, to: Address, frame: Uint8Array): Effect.Effect<void, TransportError> =>
  Effect.suspend(() => {
    const error = unsafeSendFrame(ctx, to, frame)
    return error === undefined ? Effect.void : Effect.fail(error)
  })

/** Best effort: loss is the medium's right, and retries are timer-driven. */
const sendQuiet = (ctx: Ctx, to: Address, frame: Uint8Array): Effect.Effect<void> =>
  Effect.ignore(sendFrame(ctx, to, frame))

const reject = (ctx: Ctx, frame: Uint8Array): undefined => {
  ctx.counters.cellsRejected += fragment.cellsFor(frame.length, ctx.settings.cellBytes)
  return undefined
}

const failHandshake = (ctx: Ctx): undefined => {
  ctx.counters.handshakesFailed++
  return undefined
}

// ---------------------------------------------------------------------------------------------------
// Sessions

/** Releases everything a session holds. Sends nothing: callers decide whether the peer is told. */
const closeLocal = (ctx: Ctx, live: LiveState): void => Table.release(ctx, live)

const sessionOf = (ctx: Ctx, live: LiveState): Session => {
  const { frameBytesMax } = ctx.settings
  const unsafeSend = Table.sessionUnsafeSend(live, frameBytesMax, ctx.counters, (frame) => {
    live.lastSentMs = ctx.now()
    return unsafeSendFrame(ctx, live.info.remote, frameOf(Kind.Data, frame))
  })
  return {
    peer: live.info.peer,
    remote: live.info.remote,
    initiator: live.info.initiator,
    frameBytesMax,
    // One kind byte rides in front of the frame inside the cell.
    mtuBytes: fragment.payloadBytes(ctx.settings.cellBytes) - 1,
    send: Table.sessionSend(unsafeSend),
    unsafeSend,
    frames: Mailbox.toStream(live.inbox),
    receive: Inbound.receive(live),
    closed: Deferred.await(live.closedSignal),
    close: Effect.suspend(() => {
      if (!live.open) return Effect.void
      closeLocal(ctx, live)
      return sendQuiet(ctx, live.info.remote, closeFrame)
    })
  }
}

interface Established {
  readonly address: Address
  readonly peer: NodeId.NodeId
  readonly initiator: boolean
  readonly nonceA: Uint8Array
  readonly nonceB: Uint8Array
  readonly confirm: Uint8Array | undefined
  readonly replace: boolean
  /** Frames that arrived before the handshake finished, in arrival order. */
  readonly early: ReadonlyArray<Uint8Array>
}

/** Installs the session a handshake produced (or keeps the one we already hold) and settles the dials. */
const register = (
  ctx: Ctx,
  done: Established,
  inbox: Mailbox.Mailbox<Uint8Array>,
  closedSignal: Deferred.Deferred<void>
): void =>
  void Table.register(ctx, done, (live) => closeLocal(ctx, live), () => {
    const nowMs = ctx.now()
    const info: SessionInfo = { peer: done.peer, remote: done.address, initiator: done.initiator, establishedAtMs: nowMs }
    const state: LiveState = {
      info, inbox, closedSignal, handler: undefined, nonceA: done.nonceA, nonceB: done.nonceB, confirm: done.confirm,
      lastInboundMs: nowMs, lastSentMs: nowMs, open: true
    }
    return Object.assign(state, { session: sessionOf(ctx, state) })
  })

const establish = (ctx: Ctx, done: Established): Effect.Effect<void> =>
  Effect.gen(function*() {
    // Allocated first, so that checking the tables and registering happen with no yield in between.
    const inbox = yield* Mailbox.make<Uint8Array>({ capacity: ctx.settings.inboxFrames, strategy: "dropping" })
    const closedSignal = yield* Deferred.make<void>()
    for (const frame of done.early) inbox.unsafeOffer(frame)
    yield* Effect.sync(() => register(ctx, done, inbox, closedSignal))
  })

// ---------------------------------------------------------------------------------------------------
// Handshake: responder side

const respond = (
  ctx: Ctx,
  from: Address,
  peer: NodeId.NodeId,
  hello: { readonly nonce: Uint8Array; readonly publicKey: Uint8Array },
  replace: boolean
): Effect.Effect<void> =>
  Effect.gen(function*() {
    const nonceB = yield* randomNonce
    const deferred = yield* Deferred.make<Session, LinkError>()
    const local = ctx.identity
    const signature = ctx.signatures.sign(local, transcript(ackLabel, hello.nonce, nonceB, peer, local.id))
    const ack = frameOf(Kind.HelloAck, NodeId.toBytes(local.id), hello.nonce, nonceB, local.publicKey, signature)
    let pending = ctx.pendings.get(from)
    if (pending === undefined) {
      pending = { deferred, initiator: undefined, responder: undefined }
      ctx.pendings.set(from, pending)
    }
    pending.responder = {
      peer, publicKey: hello.publicKey, nonceA: hello.nonce, nonceB, ack, replace, sends: 1, sentAtMs: ctx.now(), early: []
    }
    yield* sendQuiet(ctx, from, ack)
  })

const admitsHello = (ctx: Ctx, pending: Pending | undefined, live: Live | undefined, peer: NodeId.NodeId): boolean =>
  (pending !== undefined || ctx.pendings.size < ctx.settings.handshakesMax) &&
  (live !== undefined || ctx.sessions.has(peer) || ctx.sessions.size < ctx.settings.peersMax)

const onHello = (ctx: Ctx, from: Address, frame: Uint8Array): Effect.Effect<void> | undefined => {
  if (frame.length !== helloBytes(ctx.signatures)) return reject(ctx, frame)
  const claimed = frame.subarray(1, 1 + idBytes)
  const nonce = frame.slice(1 + idBytes, 1 + idBytes + nonceBytes)
  const publicKey = frame.slice(1 + idBytes + nonceBytes)
  const peer = claimedPeer(claimed, publicKey)
  if (peer === undefined || peer === ctx.identity.id) return failHandshake(ctx)
  const pending = ctx.pendings.get(from)
  const responder = pending?.responder
  if (responder !== undefined && responder.peer === peer && equalBytes(responder.nonceA, nonce)) {
    return sendQuiet(ctx, from, responder.ack)
  }
  const live = ctx.byAddress.get(from)
  // A late copy of the HELLO that made the current session.
  if (live !== undefined && live.info.peer === peer && equalBytes(live.nonceA, nonce)) return undefined
  if (!admitsHello(ctx, pending, live, peer)) return failHandshake(ctx)
  // Holding a session while the peer says HELLO and we are not dialing it: the peer lost its side.
  const replace = live !== undefined && pending?.initiator === undefined
  return respond(ctx, from, peer, { nonce, publicKey }, replace)
}

const onConfirm = (ctx: Ctx, from: Address, frame: Uint8Array): Effect.Effect<void> | undefined => {
  if (frame.length !== confirmBytes(ctx.signatures)) return reject(ctx, frame)
  const nonceA = frame.subarray(1, 1 + nonceBytes)
  const nonceB = frame.subarray(1 + nonceBytes, 1 + 2 * nonceBytes)
  const responder = ctx.pendings.get(from)?.responder
  if (responder === undefined || !equalBytes(responder.nonceA, nonceA) || !equalBytes(responder.nonceB, nonceB)) {
    // The CONFIRM of a crossing handshake whose twin already gave us the session.
    return ctx.byAddress.has(from) ? undefined : reject(ctx, frame)
  }
  const signature = frame.subarray(1 + 2 * nonceBytes)
  const message = transcript(confirmLabel, responder.nonceA, responder.nonceB, responder.peer, ctx.identity.id)
  if (!ctx.signatures.verify(responder.publicKey, message, signature)) return failHandshake(ctx)
  return establish(ctx, {
    address: from, peer: responder.peer, initiator: false,
    nonceA: responder.nonceA, nonceB: responder.nonceB, confirm: undefined, replace: responder.replace,
    early: responder.early
  })
}

// ---------------------------------------------------------------------------------------------------
// Handshake: initiator side

/** A HELLO_ACK matching no handshake: a repeat for the session it made (CONFIRM was lost), or stray. */
const onStrayAck = (ctx: Ctx, from: Address, frame: Uint8Array, nonceA: Uint8Array, nonceB: Uint8Array) => {
  const live = ctx.byAddress.get(from)
  if (live === undefined) return reject(ctx, frame)
  if (live.confirm !== undefined && equalBytes(live.nonceA, nonceA) && equalBytes(live.nonceB, nonceB)) {
    return sendQuiet(ctx, from, live.confirm)
  }
  return undefined
}

const onAck = (ctx: Ctx, from: Address, frame: Uint8Array): Effect.Effect<void> | undefined => {
  const { publicKeyBytes } = ctx.signatures
  if (frame.length !== ackBytes(ctx.signatures)) return reject(ctx, frame)
  let offset = 1
  const take = (length: number) => frame.subarray(offset, (offset += length))
  const claimed = take(idBytes)
  const nonceA = take(nonceBytes)
  const nonceB = take(nonceBytes)
  const publicKey = take(publicKeyBytes)
  const signature = frame.subarray(offset)
  const initiator = ctx.pendings.get(from)?.initiator
  if (initiator === undefined || !equalBytes(initiator.nonce, nonceA)) return onStrayAck(ctx, from, frame, nonceA, nonceB)
  const peer = claimedPeer(claimed, publicKey)
  const local = ctx.identity
  if (peer === undefined || peer === local.id) return failHandshake(ctx)
  if (!ctx.signatures.verify(publicKey, transcript(ackLabel, nonceA, nonceB, local.id, peer), signature)) {
    return failHandshake(ctx)
  }
  const confirm = frameOf(Kind.Confirm, nonceA, nonceB, ctx.signatures.sign(local, transcript(confirmLabel, nonceA, nonceB, local.id, peer)))
  const done: Established = {
    address: from, peer, initiator: true, nonceA: nonceA.slice(), nonceB: nonceB.slice(), confirm, replace: false, early: []
  }
  // CONFIRM goes out before the session exists, so no DATA of ours can overtake it.
  return Effect.zipRight(sendQuiet(ctx, from, confirm), establish(ctx, done))
}

const joinOrRefuse = (ctx: Ctx, address: Address): Effect.Effect<Session, LinkError> | undefined =>
  Table.joinOrRefuse(ctx, address)

const dial = (ctx: Ctx, address: Address): Effect.Effect<Session, LinkError> =>
  Effect.suspend(() =>
    joinOrRefuse(ctx, address) ??
      Effect.flatMap(Effect.zip(randomNonce, Deferred.make<Session, LinkError>()), ([nonce, deferred]) =>
        // Checked again: another dial of the same address may have started while this one yielded.
        Effect.suspend(() => {
          const joined = joinOrRefuse(ctx, address)
          if (joined !== undefined) return joined
          const local = ctx.identity
          const hello = frameOf(Kind.Hello, NodeId.toBytes(local.id), nonce, local.publicKey)
          const initiator: Initiator = { nonce, hello, attempts: 1, sentAtMs: ctx.now() }
          ctx.pendings.set(address, { deferred, initiator, responder: undefined })
          // The handshake belongs to the link, not to this caller: interrupting the wait leaves it running.
          return Effect.zipRight(sendQuiet(ctx, address, hello), Deferred.await(deferred))
        })
      )
  )

// ---------------------------------------------------------------------------------------------------
// Inbound

const onData = (ctx: Ctx, from: Address, frame: Uint8Array): undefined => {
  const live = ctx.byAddress.get(from)
  if (live === undefined) return holdEarly(ctx, from, frame)
  if (frame.length - 1 > ctx.settings.frameBytesMax) return reject(ctx, frame)
  if (Inbound.deliver(live, frame.subarray(1))) ctx.counters.framesReceived++
  else ctx.counters.framesDroppedInboxFull++
  return undefined
}

// DATA from an address we answered with HELLO_ACK but whose CONFIRM has not arrived: held, bounded.
const holdEarly = (ctx: Ctx, from: Address, frame: Uint8Array): undefined => {
  const responder = ctx.pendings.get(from)?.responder
  if (responder === undefined || responder.early.length >= ctx.settings.earlyFramesMax) return reject(ctx, frame)
  responder.early.push(frame.subarray(1))
  return undefined
}

/** Handles one cell; returns the work that must run before the next cell, if any (handshakes only). */
const onDatagram = (ctx: Ctx, datagram: Datagram, nowMs: number): Effect.Effect<void> | undefined => {
  if (ctx.closing) return undefined
  const { cell, from } = datagram
  const live = ctx.byAddress.get(from)
  if (live !== undefined) live.lastInboundMs = nowMs
  // The secure link opens (authenticates and decrypts) each cell here, before reassembly.
  const frame = ctx.reassembler.accept(from, cell, nowMs)
  if (frame === undefined) return undefined
  switch (frame[0]) {
    case Kind.Data:
      return onData(ctx, from, frame)
    case Kind.Keepalive:
      return live === undefined ? reject(ctx, frame) : undefined
    case Kind.Close:
      return live === undefined ? reject(ctx, frame) : void closeLocal(ctx, live)
    case Kind.Hello:
      return onHello(ctx, from, frame)
    case Kind.HelloAck:
      return onAck(ctx, from, frame)
    case Kind.Confirm:
      return onConfirm(ctx, from, frame)
    default:
      return reject(ctx, frame)
  }
}

/** One chunk of cells, in order; plain code per cell, an Effect only where a handshake needs one. */
const onChunk = (ctx: Ctx, chunk: Chunk.Chunk<Datagram>): Effect.Effect<void> =>
  Table.onChunk(chunk, ctx.now, (datagram, nowMs) => onDatagram(ctx, datagram, nowMs))

// ---------------------------------------------------------------------------------------------------
// Timers

type Outbox = Array<readonly [Address, Uint8Array]>

const tickHandshake = (ctx: Ctx, address: Address, pending: Pending, nowMs: number, outbox: Outbox): void => {
  const { attemptMs, attemptsMax } = ctx.settings
  const initiator = pending.initiator
  if (initiator !== undefined && nowMs - initiator.sentAtMs >= attemptMs) {
    if (initiator.attempts < attemptsMax) {
      initiator.attempts++
      initiator.sentAtMs = nowMs
      outbox.push([address, initiator.hello])
    } else {
      pending.initiator = undefined
      failHandshake(ctx)
    }
  }
  const responder = pending.responder
  if (responder !== undefined && nowMs - responder.sentAtMs >= attemptMs) {
    if (responder.sends < attemptsMax) {
      responder.sends++
      responder.sentAtMs = nowMs
      outbox.push([address, responder.ack])
    } else {
      pending.responder = undefined
      failHandshake(ctx)
    }
  }
  if (pending.initiator === undefined && pending.responder === undefined) {
    ctx.pendings.delete(address)
    Deferred.unsafeDone(pending.deferred, Exit.fail(new LinkError({ reason: "Timeout", detail: address })))
  }
}

const tickSession = (ctx: Ctx, live: Live, nowMs: number, outbox: Outbox): void => {
  if (nowMs - live.lastInboundMs >= ctx.settings.idleMs) {
    closeLocal(ctx, live)
    outbox.push([live.info.remote, closeFrame])
  } else if (nowMs - live.lastSentMs >= ctx.settings.keepaliveMs) {
    live.lastSentMs = nowMs
    outbox.push([live.info.remote, keepaliveFrame])
  }
}

const tick = (ctx: Ctx): Effect.Effect<void> =>
  Effect.suspend(() => {
    const nowMs = ctx.now()
    const outbox: Outbox = []
    for (const [address, pending] of ctx.pendings) tickHandshake(ctx, address, pending, nowMs, outbox)
    for (const live of ctx.byAddress.values()) tickSession(ctx, live, nowMs, outbox)
    ctx.reassembler.sweep(nowMs)
    return Effect.forEach(outbox, ([to, frame]) => sendQuiet(ctx, to, frame), { discard: true })
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
    frameBytesMax: limits.frameBytesMax,
    peersMax: limits.peersMax,
    handshakesMax: limits.handshakesInFlightMax,
    attemptMs,
    attemptsMax: limits.handshakeAttemptsMax,
    idleMs,
    keepaliveMs,
    inboxFrames: limits.sessionInboxFrames,
    earlyFramesMax: limits.handshakeEarlyFramesMax,
    // Timers are checked by one periodic sweep, so each fires at most a quarter of its period late.
    tickMs: Math.max(1, Math.min(attemptMs, idleMs, keepaliveMs, reassemblyMs) / 4)
  }
}

const shutdown = (ctx: Ctx): Effect.Effect<void> =>
  Effect.suspend(() => {
    const lives = Table.shutdown(ctx, (live) => closeLocal(ctx, live))
    return Effect.forEach(lives, (live) => sendQuiet(ctx, live.info.remote, closeFrame), { discard: true })
  })

const serviceOf = (ctx: Ctx): Service => ({
  local: ctx.identity.id,
  address: ctx.endpoint.address,
  dial: (address) => dial(ctx, address),
  sessions: Mailbox.toStream(ctx.accepted),
  peers: Effect.sync(() => Table.peers(ctx)),
  stats: Effect.sync((): Stats => {
    const reassembly = ctx.reassembler.stats()
    return {
      ...ctx.counters,
      cellsRejected: ctx.counters.cellsRejected + reassembly.cellsRejected,
      reassembliesDropped: reassembly.partialsDropped
    }
  }),
  tables: Effect.sync(() => {
    const size = ctx.reassembler.size()
    return {
      sessions: ctx.sessions.size,
      handshakes: ctx.pendings.size,
      reassemblyAddresses: size.addresses,
      reassemblyPartials: size.partials
    }
  })
})

/** A link using the given signature scheme (tests pass a cheap or counting one; nodes use `make`). */
export const makeWith = (
  signatures: Signatures
): Effect.Effect<Service, never, Transport | Identity.NodeIdentity | Limits | Scope.Scope> =>
  Effect.gen(function*() {
    const endpoint = yield* Transport
    const identity = yield* Identity.NodeIdentity
    const limits = yield* Limits
    const clock = yield* Effect.clock
    const settings = settingsOf(limits, endpoint.capabilities.cellBytes)
    const ctx: Ctx = {
      endpoint, identity, signatures, settings,
      now: () => clock.unsafeCurrentTimeMillis(),
      reassembler: fragment.makeReassembler({
        cellBytes: settings.cellBytes,
        // Handshake frames must fit even when a build configures tiny session frames.
        frameBytesMax: Math.max(settings.frameBytesMax + 1, ackBytes(signatures)),
        partialsPerAddressMax: limits.reassembliesPerPeerMax,
        addressesMax: limits.peersMax + limits.handshakesInFlightMax,
        timeoutMs: Duration.toMillis(limits.reassemblyTimeout)
      }),
      sessions: new Map(),
      byAddress: new Map(),
      pendings: new Map(),
      accepted: yield* Mailbox.make<Session>({ capacity: limits.peersMax, strategy: "sliding" }),
      counters: {
        sessionsOpened: 0, sessionsClosed: 0, handshakesFailed: 0, cellsRejected: 0,
        framesSent: 0, framesReceived: 0, framesDroppedInboxFull: 0
      },
      // A random start keeps a restarted peer's frame ids clear of its previous run's partial frames.
      frameId: yield* Random.nextIntBetween(0, 0x1_0000_0000),
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
  }).pipe(Effect.annotateLogs({ component: "LinkPlain" }))

/** A link over the node's transport endpoint, authenticated with the node's ML-DSA-65 identity. */
export const make: Effect.Effect<Service, never, Transport | Identity.NodeIdentity | Limits | Scope.Scope> =
  makeWith(mlDsa65)

/** The `Link` service backed by `LinkPlain` (authenticated, not encrypted). */
export const layer: Layer.Layer<Link, never, Transport | Identity.NodeIdentity | Limits> = Layer.scoped(Link, make)
