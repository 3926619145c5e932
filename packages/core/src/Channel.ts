/**
 * A channel is one ordered conversation with one peer on one message stream: what RPC (and any other
 * request/response protocol) runs over. Bodies are any msgpack-encodable value; the message layer
 * frames them as envelopes and keeps per-stream order (no duplicates, no reordering; a gap the medium
 * never fills is skipped and counted, until the reliable stream layer makes gaps impossible).
 *
 * `Messages.open(peer, tag)` opens one; `Messages.serve(tag, onChannel)` accepts them.
 * A channel to the local node works the same way, through the same encoding.
 */
import type { Effect, Stream } from "effect"
import type { NodeId } from "./NodeId.js"
import type { MessageError } from "./WeftError.js"

/** One ordered conversation with one peer. */
export interface Channel {
  /** The authenticated peer (the local node for a loopback channel). */
  readonly peer: NodeId
  /** The message stream this channel uses, unique per peer and direction of opening. */
  readonly stream: number
  /** Sends one body. Fails with `MessageError("Closed")` once the channel or its session closed. */
  readonly send: (body: unknown) => Effect.Effect<void, MessageError>
  /**
   * Inbound bodies in order, from a bounded inbox (`channelInboxMessages`, new ones dropped and
   * counted when full). One consumer. Ends when the channel is closed by either side; fails with
   * `MessageError("Closed")` if the session to the peer is lost.
   */
  readonly receive: Stream.Stream<unknown, MessageError>
  /** Closes the channel and tells the peer (idempotent). */
  readonly close: Effect.Effect<void>
}
