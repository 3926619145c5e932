/**
 * A path is what the stream layer runs over: an unreliable datagram channel to one peer. Datagrams
 * may be lost, duplicated or reordered; each is at most `mtuBytes` long, so it rides in one cell below.
 *
 * Today a path is one link session (`fromSession`); later it is a source-routed circuit, and one
 * connection may use several paths at once (data on one, acknowledgements returning on another).
 * Streams see only this contract, so routing slots in underneath without touching them.
 */
import type { Effect, Stream } from "effect"
import { receiveFrom as receiveFrames, type Session } from "./Link.js"
import type { NodeId } from "./NodeId.js"
import type { LinkError } from "./WeftError.js"

/** An unreliable datagram channel to one peer. */
export interface Path {
  /** The peer at the far end (the same for every path of one connection). */
  readonly peer: NodeId
  /** Largest datagram `send` accepts. */
  readonly mtuBytes: number
  /** Sends one datagram, unreliably. Fails once the path is gone. */
  readonly send: (datagram: Uint8Array) => Effect.Effect<void, LinkError>
  /** `send` as plain code, when the path can send without waiting (a raw link session): see `Session.unsafeSend`. */
  readonly unsafeSend?: (datagram: Uint8Array) => LinkError | undefined
  /** Takes the path's inbound datagrams (one consumer); see `Receive`. A one-way path never delivers any. */
  readonly receive: Receive
}

/**
 * Delivers inbound datagrams to `onDatagram` as plain code, in arrival order, until the path closes;
 * the effect then completes. `onDatagram` runs on the per-cell path: it must not block or throw.
 */
export type Receive = (onDatagram: (datagram: Uint8Array) => void) => Effect.Effect<void>

/** `Receive` over a stream of datagrams (tests, and paths whose datagrams come from a `Stream`). */
export const receiveFrom = (datagrams: Stream.Stream<Uint8Array>): Receive => receiveFrames(datagrams)

/**
 * A path over one link session. `mtuBytes` should be what one cell carries of a session frame
 * (for `LinkPlain`: `cellBytes` less its 10-byte cell header and 1-byte kind), so that a datagram
 * is never cut into several cells; it may not exceed the session's `frameBytesMax`.
 * The path takes over the session's inbound frames (`session.receive`), which have one consumer.
 */
export const fromSession = (session: Session, mtuBytes: number): Path => {
  if (!Number.isInteger(mtuBytes) || mtuBytes <= 0 || mtuBytes > session.frameBytesMax) {
    throw new Error(`Path.fromSession: mtuBytes ${mtuBytes} is not in [1, ${session.frameBytesMax}]`)
  }
  const path: Path = { peer: session.peer, mtuBytes, send: session.send, receive: session.receive }
  return session.unsafeSend === undefined ? path : { ...path, unsafeSend: session.unsafeSend }
}
