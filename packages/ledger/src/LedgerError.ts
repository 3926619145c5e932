/**
 * The one typed error of `@weft/ledger`. Every rejection (of an amount, a transaction, a block, a
 * parameter set) is a `LedgerError` with a `reason` literal, so a caller can branch on it and a CLI can
 * print one line. Expected failures only: a broken invariant is a defect, never one of these.
 */
import { Schema } from "effect"

/** Why something was rejected. */
export const Reason = Schema.Literal(
  "NegativeAmount", // an amount below zero
  "AmountTooLarge", // an amount at or above 2^64 base units
  "Precision", // a decimal amount that is not a whole number of base units
  "ZeroAmount", // a coin, transfer or rendezvous of nothing
  "Overflow", // a sum that would reach 2^64
  "NotConserved", // inputs do not equal outputs
  "InsufficientFunds", // the wallet found too little spendable value
  "DoubleSpend", // a coin spent twice: in one transaction, one block, or across blocks
  "CoinLocked", // a coin locked by a pending transaction
  "CoinNotFound", // no such coin, ever
  "CoinExists", // an output would overwrite a live or spent coin
  "NotOwner", // the coin belongs to another account
  "BadSignature", // a signature that does not verify
  "BadKey", // a public key that does not name the account, or a malformed ML-KEM key
  "UnknownKey", // no public key in the transaction and none registered for the account
  "WrongChain", // signed for another chain
  "Replay", // a nonce already used
  "NonceGap", // a nonce beyond the next one
  "TooLarge", // a transaction or block beyond its size bound
  "RefundIsRecipient", // the refund account equals the recipient
  "PendingNotFound", // no such pending transaction
  "NotRecipient", // the pending transaction is addressed to another account
  "RendezvousNotFound", // no such rendezvous (or already completed)
  "AmountMismatch", // a mutual transfer of another amount than the rendezvous expects
  "BadSecret", // the revealed secret does not open the rendezvous commitment
  "NothingToClaim", // a mint with no accrued rewards
  "BadParams", // chain parameters that cannot work
  "Malformed", // bytes or text that do not parse
  "BadRoot", // a block whose txRoot does not match its transactions
  "WrongProducer", // a block signed by an authority other than its slot's producer (or by no authority)
  "BadSlot", // a block whose slot, time or height does not follow from its parent and the genesis
  "FutureBlock", // a block timed beyond the local clock plus the allowed skew
  "UnknownParent", // a block whose parent this node does not hold (fetch it, then retry)
  "Stale", // a block that conflicts with, or lies below, the finalized block
  "Duplicate", // a transaction (or a nonce of an account) the mempool already holds
  "MempoolFull" // the mempool is full of transactions that rank above this one
)

/** A reason literal. */
export type Reason = typeof Reason.Type

/** A rejected amount, transaction, block or parameter set; `index` is the transaction's position in a rejected block. */
export class LedgerError extends Schema.TaggedError<LedgerError>()("LedgerError", {
  reason: Reason,
  detail: Schema.optional(Schema.String),
  index: Schema.optional(Schema.Number)
}) {}

/** Shorthand for a LedgerError. */
export const make = (reason: Reason, detail: string): LedgerError => new LedgerError({ reason, detail })
