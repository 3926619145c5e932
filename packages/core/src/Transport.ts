/**
 * The transport contract: a bound endpoint that moves opaque, fixed-size **cells** to and from other
 * endpoints of the same kind. A transport knows nothing of sessions, frames or envelopes; the link
 * layer above it does. Implementations: `TransportMemory`, `TransportSim` (here), `TransportUdp` and
 * the others in their own packages. Every implementation passes `testing/TransportCompliance`.
 *
 * The `Transport` service is one bound endpoint; its layer carries the listen options, so a node build
 * picks its transport by providing a layer.
 */
import type { Stream } from "effect"
import { Context, Effect } from "effect"
import type { TransportError } from "./WeftError.js"

/** An endpoint address: `<kind>:<kind-specific text>`, e.g. `mem:3`, `sim:12`, `udp:127.0.0.1:7100`. */
export type Address = string

/** What a transport guarantees. */
export interface Capabilities {
  /** Every cell sent arrives (absent a crash or partition). */
  readonly reliable: boolean
  /** Cells arrive in the order they were sent. */
  readonly ordered: boolean
  /** The exact size of every cell. */
  readonly cellBytes: number
}

/** One inbound cell and the address it came from. */
export interface Datagram {
  readonly from: Address
  readonly cell: Uint8Array
}

/** Counters every endpoint keeps. */
export interface Stats {
  readonly cellsSent: number
  readonly cellsReceived: number
  /** Inbound cells dropped because the inbox was full. */
  readonly cellsDroppedInboxFull: number
  /** Inbound cells dropped because they were not exactly `cellBytes`. */
  readonly cellsDroppedWrongSize: number
}

/** A bound endpoint. Closing the scope that made it releases it (socket, listener, queue). */
export interface Endpoint {
  readonly kind: string
  readonly address: Address
  readonly capabilities: Capabilities
  /**
   * Hands one cell to the medium. The cell must be exactly `cellBytes` (else `TransportError("CellSize")`).
   * Success means the medium accepted it, not that it arrived: loss is silent.
   */
  readonly send: (to: Address, cell: Uint8Array) => Effect.Effect<void, TransportError>
  /**
   * `send` as plain code, for the per-cell path of the link layer (no Effect per cell): undefined when
   * the medium took the cell, else why not, with the same checks and counters. The medium may hold on
   * to `cell` after returning (a socket's send queue), so the caller must not reuse its buffer.
   * An error the medium reports later (an unreachable peer) is only counted.
   */
  readonly unsafeSend: (to: Address, cell: Uint8Array) => TransportError | undefined
  /**
   * Inbound cells in arrival order, from a bounded inbox that drops (and counts) when full.
   * There is one consumer; the stream ends when the endpoint closes.
   */
  readonly receive: Stream.Stream<Datagram, TransportError>
  readonly stats: Effect.Effect<Stats>
}

/** The node's bound transport endpoint. */
export class Transport extends Context.Tag("@weft/core/Transport")<Transport, Endpoint>() {}

/** `send` made from `unsafeSend`, for media that hand a cell over synchronously. */
export const sendOf = (unsafeSend: Endpoint["unsafeSend"]): Endpoint["send"] => (to, cell) =>
  Effect.suspend(() => {
    const error = unsafeSend(to, cell)
    return error === undefined ? Effect.void : Effect.fail(error)
  })

/** The kind part of an address (`udp` in `udp:127.0.0.1:7100`). */
export const kindOf = (address: Address): string => {
  const colon = address.indexOf(":")
  return colon < 0 ? "" : address.slice(0, colon)
}
