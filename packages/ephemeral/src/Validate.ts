/**
 * Validation of an ephemeral message before it is relayed or stored: sizes, TTL in (now, now + ttlMax],
 * block hash prefix among the newest `blockDepth` blocks, a known algorithm, enough work, and an id not
 * seen before. Every rejection has a typed reason and is counted per reason and per peer.
 *
 * The validator is plain synchronous code (it runs inside gossip's receive path, once per message): the
 * recent block hashes are a snapshot the owner refreshes (`setRecentBlockHashes`), and the checks run
 * cheapest first, so a duplicate or a stale message costs no hashing at all.
 */
import { Duration, Schema } from "effect"
import type { EphemeralError } from "./EphemeralError.js"
import type { Message } from "./Message.js"
import * as MessageModule from "./Message.js"
import type { Registry } from "./Pow.js"
import { requiredBits } from "./Pow.js"

/** Why a message was refused. */
export const Reason = Schema.Literal(
  "Truncated", // the bytes end inside a field
  "PayloadTooLarge", // payload above Message.payloadBytesMax
  "ProofTooLarge", // proof above Message.proofBytesMax
  "TrailingBytes", // bytes after the proof
  "TtlExpired", // TTL at or before now
  "TtlTooFar", // TTL beyond now + ttlMax
  "UnknownBlock", // block hash prefix not among the newest blockDepth blocks (unknown or stale)
  "UnknownAlgorithm", // proof-of-work algorithm byte not in this node's registry
  "InsufficientWork", // the proof shows fewer bits than the TTL and size need
  "Duplicate" // an id seen before (until its TTL)
)
/** Why a message was refused. */
export type Reason = typeof Reason.Type

/** Every reason, in a fixed order (for counters and reports). */
export const reasons: ReadonlyArray<Reason> = Reason.literals

/**
 * Reasons that prove the sender misbehaved (gossip "reject": dropped and the peer penalised). The rest
 * may come from an honest peer whose clock, chain view or configuration differs a little: "ignore".
 */
export const penalised: ReadonlySet<Reason> = new Set<Reason>(["Truncated", "PayloadTooLarge", "ProofTooLarge", "TrailingBytes", "InsufficientWork"])

/** The outcome of a check. */
export type Result =
  | { readonly ok: true; readonly message: Message; readonly workBits: number; readonly encodedBytes: number }
  | { readonly ok: false; readonly reason: Reason; readonly detail: string }

/** What the validator is configured with. */
export interface Config {
  readonly algorithms: Registry
  readonly ttlMax: Duration.DurationInput
  readonly blockDepth: number
  readonly seenEntriesMax: number
  readonly rejectPeersMax: number
}

/** Options of a check. */
export interface CheckOptions {
  /** Who sent it (counted per peer); none for this node's own submissions. */
  readonly peer?: string | undefined
  /** Remember the id as seen if the message passes (default true); false only asks. */
  readonly mark?: boolean | undefined
}

/** Rejections of one peer. */
export interface PeerRejections {
  readonly peer: string
  readonly total: number
  readonly reasons: Readonly<Partial<Record<Reason, number>>>
}

/** What the validator counts. */
export interface Stats {
  readonly accepted: number
  readonly rejected: Readonly<Record<Reason, number>>
  readonly byPeer: ReadonlyArray<PeerRejections>
  /** Ids remembered now, and those forgotten before their TTL because the set was full. */
  readonly seen: number
  readonly seenForgotten: number
  /** Peers whose counts were forgotten because the table was full. */
  readonly peersForgotten: number
}

const zeroCounts = (): Record<Reason, number> => Object.fromEntries(reasons.map((reason) => [reason, 0])) as Record<Reason, number>

const blockKey = (prefix: Uint8Array): number =>
  ((prefix[0]! << 24) | (prefix[1]! << 16) | (prefix[2]! << 8) | prefix[3]!) >>> 0

const rejection = (reason: Reason, detail: string): Result => ({ ok: false, reason, detail })

/** A validator with its seen set, block snapshot and counters. */
export class Validator {
  private readonly ttlMaxMs: number
  private blocks = new Set<number>()
  /** Id key → expiry (ms); insertion order is age order. */
  private readonly seen = new Map<string, number>()
  private readonly peers = new Map<string, { total: number; reasons: Partial<Record<Reason, number>> }>()
  private readonly counts = zeroCounts()
  private accepted = 0
  private seenForgotten = 0
  private peersForgotten = 0

  constructor(readonly config: Config) {
    this.ttlMaxMs = Duration.toMillis(config.ttlMax)
  }

  /** Replaces the block snapshot with the newest `blockDepth` of `hashes` (newest first). */
  setRecentBlockHashes(hashes: ReadonlyArray<Uint8Array>): void {
    const next = new Set<number>()
    for (const blockHash of hashes.slice(0, this.config.blockDepth)) {
      if (blockHash.length >= MessageModule.blockHashBytes) next.add(blockKey(blockHash))
    }
    this.blocks = next
  }

  /** Decodes and checks untrusted bytes. */
  checkBytes(bytes: Uint8Array, nowMs: number, options: CheckOptions = {}): Result {
    const decoded = MessageModule.decode(bytes)
    if (decoded._tag === "Left") return this.count(rejection(decodeReason(decoded.left), decoded.left.detail ?? ""), options)
    return this.check(decoded.right, nowMs, options, bytes)
  }

  /** Checks a decoded message (`encoded`, its encoding, saves one encode when the caller has it). */
  check(message: Message, nowMs: number, options: CheckOptions = {}, encoded?: Uint8Array): Result {
    return this.count(this.evaluate(message, nowMs, encoded, options.mark !== false), options)
  }

  /** The gossip verdict for a result. */
  static verdict(result: Result): "accept" | "reject" | "ignore" {
    return result.ok ? "accept" : penalised.has(result.reason) ? "reject" : "ignore"
  }

  /** Whether an id is remembered as seen (and not yet expired). */
  hasSeen(id: Uint8Array, nowMs: number): boolean {
    const expires = this.seen.get(MessageModule.idKey(id))
    return expires !== undefined && expires > nowMs
  }

  stats(): Stats {
    return {
      accepted: this.accepted,
      rejected: { ...this.counts },
      byPeer: Array.from(this.peers, ([peer, entry]) => ({ peer, total: entry.total, reasons: { ...entry.reasons } })),
      seen: this.seen.size,
      seenForgotten: this.seenForgotten,
      peersForgotten: this.peersForgotten
    }
  }

  private evaluate(message: Message, nowMs: number, encoded: Uint8Array | undefined, mark: boolean): Result {
    const ttlMs = message.ttl * 1000
    if (ttlMs <= nowMs) return rejection("TtlExpired", `expired at ${message.ttl}, now ${Math.floor(nowMs / 1000)}`)
    if (ttlMs > nowMs + this.ttlMaxMs) return rejection("TtlTooFar", `TTL ${message.ttl} is more than ${this.ttlMaxMs / 1000} s ahead`)
    if (!this.blocks.has(blockKey(message.blockHash))) return rejection("UnknownBlock", `block hash prefix not among the newest ${this.config.blockDepth} blocks`)
    const algorithm = this.config.algorithms.get(message.algorithm)
    if (algorithm === undefined) return rejection("UnknownAlgorithm", `proof-of-work algorithm ${message.algorithm}`)
    const key = MessageModule.idKey(message.id)
    const seenUntil = this.seen.get(key)
    if (seenUntil !== undefined && seenUntil > nowMs) return rejection("Duplicate", "id seen before")
    const bytes = encoded ?? MessageModule.encode(message)
    if (!(bytes instanceof Uint8Array)) {
      return bytes._tag === "Left" ? rejection(decodeReason(bytes.left), bytes.left.detail ?? "") : this.evaluate(message, nowMs, bytes.right, mark)
    }
    const required = requiredBits(algorithm.params, message.ttl - nowMs / 1000, bytes.length)
    const digest = MessageModule.workDigestOfEncoded(bytes, message.payload.length)
    const workBits = algorithm.work(digest, message.proof)
    if (workBits < required) return rejection("InsufficientWork", `${workBits} bits of work, ${required} needed`)
    if (mark) this.remember(key, ttlMs, nowMs)
    return { ok: true, message, workBits, encodedBytes: bytes.length }
  }

  private remember(key: string, expiresMs: number, nowMs: number): void {
    this.seen.delete(key)
    while (this.seen.size >= this.config.seenEntriesMax) {
      const oldest = this.seen.entries().next()
      if (oldest.done === true) break
      this.seen.delete(oldest.value[0])
      // An expired entry guards nothing (its message fails the TTL check): only live ones count.
      if (oldest.value[1] > nowMs) this.seenForgotten++
    }
    this.seen.set(key, expiresMs)
  }

  private count(result: Result, options: CheckOptions): Result {
    if (result.ok) {
      this.accepted++
      return result
    }
    this.counts[result.reason]++
    if (options.peer !== undefined) this.countPeer(options.peer, result.reason)
    return result
  }

  private countPeer(peer: string, reason: Reason): void {
    let entry = this.peers.get(peer)
    if (entry !== undefined) this.peers.delete(peer)
    else {
      entry = { total: 0, reasons: {} }
      if (this.peers.size >= this.config.rejectPeersMax) {
        const oldest = this.peers.keys().next()
        if (oldest.done !== true) {
          this.peers.delete(oldest.value)
          this.peersForgotten++
        }
      }
    }
    entry.total++
    entry.reasons[reason] = (entry.reasons[reason] ?? 0) + 1
    this.peers.set(peer, entry)
  }
}

const decodeReason = (error: EphemeralError): Reason => {
  switch (error.reason) {
    case "PayloadTooLarge":
    case "ProofTooLarge":
    case "TrailingBytes":
      return error.reason
    default:
      return "Truncated"
  }
}
