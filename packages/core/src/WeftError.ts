/**
 * The typed errors of `@weft/core`. Each is a `Schema.TaggedError` (so it can cross an RPC boundary)
 * with a `reason` literal saying what went wrong and an optional `detail` for humans.
 * Expected failures travel in the error channel; a broken invariant is a defect, never one of these.
 */
import { Schema } from "effect"

const detail = Schema.optional(Schema.String)

/** Bytes that could not be decoded: too large, malformed, not canonical, or not matching the schema. */
export class CodecError extends Schema.TaggedError<CodecError>()("CodecError", {
  reason: Schema.Literal("TooLarge", "Malformed", "NonCanonical", "Schema", "Unsupported"),
  detail
}) {}

/** A key file or signature problem. */
export class IdentityError extends Schema.TaggedError<IdentityError>()("IdentityError", {
  reason: Schema.Literal("KeyFileRead", "KeyFileWrite", "KeyFileFormat", "KeyFileVersion", "BadKey", "BadNodeId"),
  detail
}) {}

/** A transport could not do what was asked. */
export class TransportError extends Schema.TaggedError<TransportError>()("TransportError", {
  reason: Schema.Literal("Bind", "Closed", "CellSize", "BadAddress", "Unreachable", "Send"),
  detail
}) {}

/** A session could not be established or used. */
export class LinkError extends Schema.TaggedError<LinkError>()("LinkError", {
  reason: Schema.Literal("Timeout", "Closed", "PeersFull", "HandshakesFull", "FrameTooLarge", "SelfDial", "Transport"),
  detail
}) {}

/** A message could not be sent, delivered or answered. */
export class MessageError extends Schema.TaggedError<MessageError>()("MessageError", {
  reason: Schema.Literal(
    "Timeout", // no reply within the call's timeout
    "Unreachable", // no session to the peer could be opened
    "Closed", // the session or channel closed
    "TooLarge", // the encoded envelope exceeds envelopeBytesMax
    "CallsFull", // callsInFlightMax reached
    "ChannelsFull", // channelsPerPeerMax reached
    "NoHandler", // the peer has no handler for the tag or actor path
    "MailboxFull", // the actor's mailbox rejected the message
    "Remote", // the handler failed on the peer
    "Schema" // the body did not match the expected schema
  ),
  detail
}) {}

/** An actor could not be spawned or reached. */
export class ActorError extends Schema.TaggedError<ActorError>()("ActorError", {
  reason: Schema.Literal("Exists", "ActorsFull", "NotFound", "MailboxFull", "Stopped", "BadPath"),
  detail
}) {}

/** A node could not start or be reached by a local tool. */
export class NodeError extends Schema.TaggedError<NodeError>()("NodeError", {
  reason: Schema.Literal("DataDir", "Control", "Config", "DuplicateRpc", "UnknownService", "UnknownMethod"),
  detail
}) {}

/** A gossip publish or subscription was refused. */
export class GossipError extends Schema.TaggedError<GossipError>()("GossipError", {
  reason: Schema.Literal(
    "TooLarge", // the payload exceeds gossipMessageBytesMax
    "BadTopic", // empty, or longer than gossipTopicCharsMax
    "Rejected", // the topic's validator rejected the message
    "NoPeers" // no subscribed peer at the time (delivered locally; announced to the first peers that subscribe)
  ),
  detail
}) {}

/** A content-store operation or a store sync with a peer failed. */
export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  reason: Schema.Literal(
    "TooLarge", // an object above storeObjectBytesMax, or a request with more ids than storeSyncIdsPerRequestMax
    "Full", // storeBytesMax, storeObjectsMax or storePinsPerObjectMax reached (pinned data is never evicted)
    "Corrupt", // stored bytes no longer hash to their id: refused, never returned
    "NotFound", // pin of an object the store does not hold
    "Backend", // the storage backend failed (disk, map, environment)
    "PeerMismatch", // a peer's reply did not match its request (more entries than ids asked, or undecodable)
    "PeerBanned", // the peer's penalty reached storeSyncPenaltyMax: no more fetches from it, or service to it
    "Unreachable", // the peer could not be called (no session, timeout, overloaded)
    "Refused" // the peer refused the request (its StoreError is in the detail)
  ),
  detail
}) {}
