/**
 * Blocks: content-addressed, chained by hash, signed by their slot's authority.
 *
 * A block is `{ header, txs, signature }`. Its id is the SHA-256 of the header's canonical encoding;
 * the header names its parent's id and commits to its transactions by `txRoot` (their ids and their
 * signed bytes, see `txRoot`), so the id names the whole block. The producer signs
 * `"weft/ledger/block/v1" ‖ id` with its ML-DSA-65 key (a domain label: no transaction or handshake
 * signature can pass for a block's).
 *
 * The `Genesis` value fixes a chain: its parameters, allocations, authority set (account ids and public
 * keys) and start time. The genesis block is not signed; its `parent` is the digest of the genesis value,
 * so two chains with the same id but different authorities or allocations never share a block id.
 *
 * `decode` is the edge: size bound before anything, schema, chain, slot and producer against the
 * genesis, clock skew, signature and txRoot, each a typed `LedgerError`. What needs the parent or the
 * state (height, slot order, the transactions themselves) is `Consensus.insert`'s job. `decodeStored`
 * reads back bytes this node already checked (its own store, on a restart) without the signature.
 */
import { Canonical } from "@weft/core"
import type { Brand } from "effect"
import { Either, Schema } from "effect"
import * as Account from "./Account.js"
import * as Id from "./Id.js"
import * as Rules from "./internal/consensusRules.js"
import { LedgerError, make as fail } from "./LedgerError.js"
import * as LedgerLimits from "./LedgerLimits.js"
import * as Params from "./Params.js"
import type * as State from "./State.js"
import * as Transaction from "./Transaction.js"

/** A block header: everything the id covers. */
export const Header = Schema.Struct({
  chain: Schema.String,
  height: Schema.Int.pipe(Schema.nonNegative()),
  parent: Transaction.Bytes32,
  timeMs: Schema.Int.pipe(Schema.nonNegative()),
  slot: Schema.Int.pipe(Schema.nonNegative()),
  producer: Transaction.Bytes32,
  txRoot: Transaction.Bytes32
})
/** A block header. */
export type Header = typeof Header.Type

/** A block: header, transactions in order, and the producer's signature over the header id. */
export const Block = Schema.Struct({
  header: Header,
  txs: Schema.Array(Transaction.Transaction),
  signature: Schema.Uint8ArrayFromSelf
})
/** A block. */
export type Block = typeof Block.Type

/** A block that passed `check` (or was built by `make`): the only kind `Consensus.insert` takes. */
export type Verified = Block & Brand.Brand<"VerifiedBlock">

/** An authority: an account allowed to produce blocks. */
export interface Authority {
  readonly id: Id.Id
  readonly publicKey: Uint8Array
}

/** What fixes a chain: parameters, allocations, the authority set (in slot order) and the time of slot 0. */
export interface Genesis {
  readonly params: Params.Params
  readonly allocations: ReadonlyArray<State.Allocation>
  readonly authorities: ReadonlyArray<Authority>
  readonly timeMs: number
}

const problem = (genesis: Genesis): string | undefined => {
  if (genesis.authorities.length === 0) return "the authority set is empty"
  if (!Number.isSafeInteger(genesis.timeMs) || genesis.timeMs < 0) return "timeMs must be a non-negative integer"
  const seen = new Set<string>()
  for (const authority of genesis.authorities) {
    if (authority.publicKey.length !== Account.publicKeyBytes) return `authority 0x${authority.id} has a malformed key`
    if (Account.idOf(authority.publicKey) !== authority.id) return `authority 0x${authority.id}: the key does not name the account`
    if (seen.has(authority.id)) return `authority 0x${authority.id} appears twice`
    seen.add(authority.id)
  }
  return undefined
}

/** A checked genesis: valid parameters, a non-empty set of distinct authorities whose keys name them. */
export const makeGenesis = (genesis: Genesis): Either.Either<Genesis, LedgerError> =>
  Either.flatMap(Params.make(genesis.params), (params) => {
    const checked = { ...genesis, params }
    const reason = problem(checked)
    return reason === undefined ? Either.right(checked) : Either.left(fail("BadParams", reason))
  })

/** The digest of a genesis value: the parent of the genesis block. */
export const genesisDigest = (genesis: Genesis): Uint8Array => {
  const { chainId, symbol, unitsPerToken, blockTimeMs, initialRewardUnits, halvingIntervalBlocks } = genesis.params
  const value = [
    "weft/ledger/genesis/v1",
    { chainId, symbol, unitsPerToken, blockTimeMs, initialRewardUnits, halvingIntervalBlocks },
    genesis.allocations.map(({ owner, amount }) => [owner, amount]),
    genesis.authorities.map(({ id, publicKey }) => [id, publicKey]),
    genesis.timeMs
  ]
  // Strings, safe integers, amounts below 2^64 and bytes only: encoding cannot fail.
  return Either.getOrThrow(Canonical.hash(value))
}

/** The block id: SHA-256 of the header's canonical encoding. */
export const id = (header: Header): Id.Id => Id.fromBytes(Either.getOrThrow(Canonical.hash(header)))

/**
 * The txRoot of a list of transactions: SHA-256 of the canonical list of `[id, SHA-256(canonical
 * transaction)]` pairs. Transaction ids leave signatures out (so re-signing cannot change them); a root
 * over ids alone would let anyone swap a signature inside a block without changing the block id, so the
 * root also covers each whole signed transaction.
 */
export const txRoot = (txs: ReadonlyArray<Transaction.Transaction>): Either.Either<Uint8Array, LedgerError> => {
  const leaves: Array<ReadonlyArray<Uint8Array>> = []
  for (const tx of txs) {
    const txId = Transaction.id(tx.body)
    if (Either.isLeft(txId)) return Either.left(txId.left)
    const encoded = Transaction.encode(tx)
    if (Either.isLeft(encoded)) return Either.left(encoded.left)
    leaves.push([Id.toBytes(txId.right), Canonical.digest(encoded.right)])
  }
  return Either.right(Either.getOrThrow(Canonical.hash(leaves)))
}

/** The genesis block: height 0, slot 0, unsigned, its parent the genesis digest. */
export const genesisBlock = (genesis: Genesis): Verified => {
  const block: Block = {
    header: {
      chain: genesis.params.chainId,
      height: 0,
      parent: genesisDigest(genesis),
      timeMs: genesis.timeMs,
      slot: 0,
      producer: new Uint8Array(Id.bytes),
      txRoot: Either.getOrThrow(txRoot([]))
    },
    txs: [],
    signature: new Uint8Array(0)
  }
  return block as Verified
}

const blockLabel = new TextEncoder().encode("weft/ledger/block/v1")

/** What the producer signs: the domain label and the block id. */
export const signingMessage = (blockId: Id.Id): Uint8Array => {
  const message = new Uint8Array(blockLabel.length + Id.bytes)
  message.set(blockLabel)
  message.set(Id.toBytes(blockId), blockLabel.length)
  return message
}

/** What `make` needs: the parent, the slot, the transactions and the producing account. */
export interface MakeOptions {
  readonly genesis: Genesis
  readonly parent: { readonly id: Id.Id; readonly height: number }
  readonly slot: number
  /** Defaults to the start of the slot. */
  readonly timeMs?: number
  readonly txs: ReadonlyArray<Transaction.Transaction>
  readonly producer: Account.Account
}

/** Builds and signs a block (deterministic); WrongProducer if the slot belongs to another authority. */
export const make = (options: MakeOptions): Either.Either<Verified, LedgerError> => {
  const { genesis, parent, slot, txs, producer } = options
  if (Rules.producerOf(genesis, slot).id !== producer.id) return Either.left(fail("WrongProducer", `slot ${slot} belongs to another authority`))
  return Either.map(txRoot(txs), (root) => {
    const header: Header = {
      chain: genesis.params.chainId,
      height: parent.height + 1,
      parent: Id.toBytes(parent.id),
      timeMs: options.timeMs ?? Rules.slotStartMs(genesis, slot),
      slot,
      producer: Id.toBytes(producer.id),
      txRoot: root
    }
    return { header, txs, signature: Account.sign(producer, signingMessage(id(header))) } as Verified
  })
}

/** The block's canonical bytes. */
export const encode = (block: Block): Either.Either<Uint8Array, LedgerError> =>
  Either.mapLeft(Canonical.encode(block), (error) => fail(error.reason === "TooLarge" ? "TooLarge" : "Malformed", `block: ${error.detail ?? error.reason}`))

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0

const checkHeader = (header: Header, genesis: Genesis, nowMs: number, limits: LedgerLimits.Values): Either.Either<void, LedgerError> => {
  if (header.chain !== genesis.params.chainId) return Either.left(fail("WrongChain", `block for chain ${JSON.stringify(header.chain.slice(0, 80))}, this is ${JSON.stringify(genesis.params.chainId)}`))
  if (header.height < 1 || header.slot < 1) return Either.left(fail("BadSlot", "only the genesis block has height or slot 0"))
  if (Rules.slotAt(genesis, header.timeMs) !== header.slot) return Either.left(fail("BadSlot", `time ${header.timeMs} is not in slot ${header.slot}`))
  if (header.timeMs > nowMs + limits.blockClockSkewMsMax) return Either.left(fail("FutureBlock", `block time ${header.timeMs} is ahead of ${nowMs} by more than ${limits.blockClockSkewMsMax} ms`))
  if (Id.fromBytes(header.producer) !== Rules.producerOf(genesis, header.slot).id) return Either.left(fail("WrongProducer", `slot ${header.slot} belongs to another authority`))
  return Either.void
}

const checkWith = (block: Block, genesis: Genesis, nowMs: number, limits: LedgerLimits.Values, signed: boolean): Either.Either<Verified, LedgerError> =>
  Either.gen(function*() {
    const { header } = block
    yield* checkHeader(header, genesis, nowMs, limits)
    if (block.txs.length > limits.transactionsPerBlockMax) return yield* Either.left(fail("TooLarge", `${block.txs.length} transactions, at most ${limits.transactionsPerBlockMax}`))
    const producer = Rules.producerOf(genesis, header.slot)
    if (signed && !Account.verify(producer.publicKey, signingMessage(id(header)), block.signature)) return yield* Either.left(fail("BadSignature", "the producer's signature does not verify"))
    const root = yield* txRoot(block.txs)
    if (!sameBytes(root, header.txRoot)) return yield* Either.left(fail("BadRoot", "txRoot does not match the transactions"))
    return block as Verified
  })

/**
 * Checks a decoded block against the genesis and the local clock: chain, slot and time, the slot's
 * producer, clock skew, transaction count, signature, txRoot. Cheap checks first; the signature before
 * the txRoot, whose cost grows with the block.
 */
export const check = (block: Block, genesis: Genesis, nowMs: number, limits: LedgerLimits.Values = LedgerLimits.defaults): Either.Either<Verified, LedgerError> =>
  checkWith(block, genesis, nowMs, limits, true)

const decodeSchema = Schema.decodeUnknownEither(Block, { onExcessProperty: "error" })

const parse = (bytes: Uint8Array, limits: LedgerLimits.Values): Either.Either<Block, LedgerError> => {
  if (bytes.length > limits.blockBytesMax) return Either.left(fail("TooLarge", `block of ${bytes.length} bytes, at most ${limits.blockBytesMax}`))
  return Canonical.decode(bytes, limits.blockBytesMax).pipe(
    Either.mapLeft((error) => fail(error.reason === "TooLarge" ? "TooLarge" : "Malformed", `block: ${error.detail ?? error.reason}`)),
    Either.flatMap((value) => Either.mapLeft(decodeSchema(value), (error) => fail("Malformed", `block: ${error.message.slice(0, 1000)}`)))
  )
}

/** Decodes untrusted bytes (at most `blockBytesMax`, else TooLarge, before any parsing) and runs `check`: the edge for blocks. */
export const decode = (bytes: Uint8Array, genesis: Genesis, nowMs: number, limits: LedgerLimits.Values = LedgerLimits.defaults): Either.Either<Verified, LedgerError> =>
  Either.flatMap(parse(bytes, limits), (block) => checkWith(block, genesis, nowMs, limits, true))

/**
 * Decodes block bytes this node checked before and kept in its own store, to rebuild consensus on a
 * restart (`Consensus.replay`): everything `decode` checks but the signature and the clock, since an
 * ML-DSA verification per stored block would dominate a restart. Never for bytes from a peer.
 */
export const decodeStored = (bytes: Uint8Array, genesis: Genesis, limits: LedgerLimits.Values = LedgerLimits.defaults): Either.Either<Verified, LedgerError> =>
  Either.flatMap(parse(bytes, limits), (block) => checkWith(block, genesis, Number.MAX_SAFE_INTEGER, limits, false))
