/**
 * The session table both raw links keep (`LinkPlain`, `LinkSecure`), and the logic over it that does not
 * depend on how cells are sealed: joining or refusing a dial, installing a handshake's session (one per
 * peer: invariant 1), releasing one, shutting the table down, and running a chunk of inbound cells.
 * Each link's context satisfies `Table` structurally; the link keeps its own handshake and cell code.
 */
import { Chunk, Deferred, Effect, Exit } from "effect"
import type { Mailbox } from "effect"
import type { Session, SessionInfo } from "../Link.js"
import type { NodeId } from "../NodeId.js"
import type { Address, Datagram } from "../Transport.js"
import type { TransportError } from "../WeftError.js"
import { LinkError } from "../WeftError.js"

/** What releasing a session needs of it. */
export interface Held {
  readonly info: SessionInfo
  readonly inbox: Mailbox.Mailbox<Uint8Array>
  readonly closedSignal: Deferred.Deferred<void>
  open: boolean
}

/** What the table needs of a live session. */
export interface Live extends Held {
  readonly session: Session
}

/** What the table needs of a handshake in progress with one address. */
export interface Pending {
  readonly deferred: Deferred.Deferred<Session, LinkError>
}

/** The tables and counters of a link (its context, seen structurally). */
export interface Table<L extends Live> {
  readonly endpoint: { readonly address: Address }
  readonly settings: { readonly peersMax: number; readonly handshakesMax: number }
  readonly sessions: Map<NodeId, L>
  readonly byAddress: Map<Address, L>
  readonly pendings: Map<Address, Pending>
  readonly accepted: Mailbox.Mailbox<Session>
  readonly reassembler: { readonly forget: (address: Address) => void }
  readonly counters: { sessionsOpened: number; sessionsClosed: number; handshakesFailed: number }
  closing: boolean
}

/** Fails fast when a dial cannot or need not start a handshake; otherwise undefined. */
export const joinOrRefuse = <L extends Live>(table: Table<L>, address: Address): Effect.Effect<Session, LinkError> | undefined => {
  if (table.closing) return Effect.fail(new LinkError({ reason: "Closed" }))
  if (address === table.endpoint.address) return Effect.fail(new LinkError({ reason: "SelfDial", detail: address }))
  const live = table.byAddress.get(address)
  if (live !== undefined) return Effect.succeed(live.session)
  const pending = table.pendings.get(address)
  if (pending !== undefined) return Deferred.await(pending.deferred)
  if (table.sessions.size >= table.settings.peersMax) {
    table.counters.handshakesFailed++
    return Effect.fail(new LinkError({ reason: "PeersFull" }))
  }
  if (table.pendings.size >= table.settings.handshakesMax) {
    table.counters.handshakesFailed++
    return Effect.fail(new LinkError({ reason: "HandshakesFull" }))
  }
  return undefined
}

/**
 * Releases what a session holds in the table (`forget` runs for its address, e.g. to drop a rekey in
 * progress). Sends nothing: callers decide whether the peer is told.
 */
export const release = <L extends Live>(table: Table<L>, live: Held, forget?: (address: Address) => void): void => {
  if (!live.open) return
  live.open = false
  if (table.sessions.get(live.info.peer) === live) table.sessions.delete(live.info.peer)
  if (table.byAddress.get(live.info.remote) === live) {
    table.byAddress.delete(live.info.remote)
    table.reassembler.forget(live.info.remote)
    forget?.(live.info.remote)
  }
  table.counters.sessionsClosed++
  live.inbox.unsafeDone(Exit.void)
  Deferred.unsafeDone(live.closedSignal, Exit.void)
}

/**
 * Installs the session a handshake produced and settles the dials waiting on its address; or keeps the
 * session already held with that peer (a crossing handshake that completes second yields the first one's),
 * unless `replace`. Returns the new session, or undefined when none was installed.
 */
export const register = <L extends Live>(
  table: Table<L>,
  done: { readonly address: Address; readonly peer: NodeId; readonly replace: boolean },
  closeLocal: (live: L) => void,
  make: () => L
): L | undefined => {
  const pending = table.pendings.get(done.address)
  table.pendings.delete(done.address)
  const settle = (exit: Exit.Exit<Session, LinkError>) => pending && Deferred.unsafeDone(pending.deferred, exit)
  if (table.closing) return void settle(Exit.fail(new LinkError({ reason: "Closed" })))
  const existing = table.sessions.get(done.peer)
  if (existing !== undefined && existing.info.remote === done.address && !done.replace) {
    return void settle(Exit.succeed(existing.session))
  }
  if (existing !== undefined) closeLocal(existing)
  const atAddress = table.byAddress.get(done.address)
  if (atAddress !== undefined) closeLocal(atAddress)
  if (table.sessions.size >= table.settings.peersMax) {
    table.counters.handshakesFailed++
    return void settle(Exit.fail(new LinkError({ reason: "PeersFull" })))
  }
  const live = make()
  table.sessions.set(done.peer, live)
  table.byAddress.set(done.address, live)
  table.counters.sessionsOpened++
  table.accepted.unsafeOffer(live.session)
  settle(Exit.succeed(live.session))
  return live
}

/** Closes every session and fails every dial in progress; returns the sessions, for the link to tell their peers. */
export const shutdown = <L extends Live>(table: Table<L>, closeLocal: (live: L) => void): ReadonlyArray<L> => {
  table.closing = true
  const lives = Array.from(table.byAddress.values())
  for (const live of lives) closeLocal(live)
  for (const [address, pending] of table.pendings) {
    table.pendings.delete(address)
    Deferred.unsafeDone(pending.deferred, Exit.fail(new LinkError({ reason: "Closed" })))
  }
  table.accepted.unsafeDone(Exit.void)
  return lives
}

/** The peers of the table's sessions. */
export const peers = <L extends Live>(table: Table<L>): ReadonlyArray<SessionInfo> =>
  Array.from(table.sessions.values(), (live) => live.info)

/**
 * One chunk of inbound cells, in order: plain code per cell (`onDatagram`), an Effect only where a cell
 * returns work that must run before the next one (handshakes).
 */
export const onChunk = (
  chunk: Chunk.Chunk<Datagram>,
  now: () => number,
  onDatagram: (datagram: Datagram, nowMs: number) => Effect.Effect<void> | undefined
): Effect.Effect<void> => {
  const datagrams = Chunk.toReadonlyArray(chunk)
  const from = (start: number): Effect.Effect<void> => {
    const nowMs = now()
    for (let index = start; index < datagrams.length; index++) {
      const work = onDatagram(datagrams[index]!, nowMs)
      if (work !== undefined) return Effect.zipRight(work, Effect.suspend(() => from(index + 1)))
    }
    return Effect.void
  }
  return from(0)
}

const transportFailure = (error: TransportError) => new LinkError({ reason: "Transport", detail: error.reason })

/**
 * `Session.unsafeSend` of a raw link: refuses a closed session or an oversized frame, counts the frame,
 * and hands it to the link's own sealing and sending (`send`, plain code).
 */
export const sessionUnsafeSend = (
  live: Held,
  frameBytesMax: number,
  counters: { framesSent: number },
  send: (frame: Uint8Array) => TransportError | undefined
) =>
(frame: Uint8Array): LinkError | undefined => {
  if (!live.open) return new LinkError({ reason: "Closed" })
  if (frame.length > frameBytesMax) return new LinkError({ reason: "FrameTooLarge", detail: `${frame.length} bytes > ${frameBytesMax}` })
  counters.framesSent++
  const error = send(frame)
  return error === undefined ? undefined : transportFailure(error)
}

/** `Session.send` of a raw link: its `unsafeSend` as an effect. */
export const sessionSend = (unsafeSend: (frame: Uint8Array) => LinkError | undefined) => (frame: Uint8Array): Effect.Effect<void, LinkError> =>
  Effect.suspend(() => {
    const error = unsafeSend(frame)
    return error === undefined ? Effect.void : Effect.fail(error)
  })
