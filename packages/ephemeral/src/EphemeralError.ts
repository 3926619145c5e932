/**
 * The one typed error of `@weft/ephemeral`, a `Schema.TaggedError` (so it crosses RPC) with a `reason`
 * literal. Validation rejections have their own literal type (`Validate.Reason`); when one must travel
 * in the error channel (a refused submission) it becomes `EphemeralError("Rejected")` with the reason in
 * `rejection`.
 */
import { Schema } from "effect"

/** Why an ephemeral operation failed. */
export const Reason = Schema.Literal(
  "Truncated", // bytes end inside a field (the detail names it)
  "PayloadTooLarge", // a payload above Message.payloadBytesMax
  "ProofTooLarge", // a proof above Message.proofBytesMax
  "TrailingBytes", // bytes after the proof
  "BadField", // a value that cannot be encoded (id, block hash, TTL out of range)
  "UnknownAlgorithm", // a proof-of-work algorithm byte this node does not know
  "Rejected", // validation refused a message (see `rejection`)
  "NoKey", // the account has no lattice keys on the chain
  "BadChannel", // a channel opening that failed its checks (bad signature, unknown sender)
  "TooLarge", // a channel text above its size class, or an inbox watching too many ids
  "NoBlocks", // the chain view has no recent block hash to stamp a message with
  "InboxesFull" // the node already serves `inboxSubscribersMax` inbox subscriptions
)

/** A typed failure of the ephemeral package. */
export class EphemeralError extends Schema.TaggedError<EphemeralError>()("EphemeralError", {
  reason: Reason,
  /** The validation reason, when `reason` is "Rejected". */
  rejection: Schema.optional(Schema.String),
  detail: Schema.optional(Schema.String)
}) {}
