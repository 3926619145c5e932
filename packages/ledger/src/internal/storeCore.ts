/**
 * The ledger store's logic over any tables. A block import is one transaction: every transaction is
 * validated by `State.validateWith` against a reader over the tables (which sees the block's earlier
 * writes), then written with what the explorer will need to fold it (its prior); then the producer's
 * reward (`State.reward`), the block, its height, the head and the undo record. A rejection throws
 * `Rejected` inside the transaction, so the backend writes nothing, and comes out as a `LedgerError`.
 *
 * The undo record of a block holds the previous value of every key the import wrote (state, chain,
 * priors), so a rollback restores exactly what was there; only the last `undoBlocksMax` are kept.
 *
 * The explorer index folds finalized blocks only (`advanceIndex`, one transaction per call): it is
 * never written by an import nor undone by a rollback, and a rollback below it is refused.
 */
import { Canonical } from "@weft/core"
import { Either, HashMap, Option, Schema } from "effect"
import * as Id from "../Id.js"
import { LedgerError, make as fail } from "../LedgerError.js"
import type * as LedgerLimits from "../LedgerLimits.js"
import type * as Params from "../Params.js"
import { IdSchema } from "../Records.js"
import * as State from "../State.js"
import * as Transaction from "../Transaction.js"
import type { Head, ImportedBlock, Service, StoredBlock } from "../LedgerStore.js"
import { decoder, encode, equalBytes, metaKey, minted, reader, u32, writeDiff } from "./storeCodec.js"
import { fold, priorOf, record, rebuild, type Prior, type Step } from "./storeExplorer.js"
import { hex, type Table, tableNames, type Tables } from "./storeTables.js"

/** A rejection thrown inside a transaction to abort it; never escapes `run`. */
class Rejected {
  constructor(readonly error: LedgerError) {}
}

const reject = (error: LedgerError): never => {
  throw new Rejected(error)
}

/** Runs `body` in one transaction: its value, or the rejection (with nothing written). Other throws are defects. */
const run = <A>(tables: Tables, body: () => A): Either.Either<A, LedgerError> => {
  try {
    return Either.right(tables.transaction(body))
  } catch (cause) {
    if (cause instanceof Rejected) return Either.left(cause.error)
    throw cause
  }
}

const HeadRecord = Schema.Struct({ height: Schema.Int.pipe(Schema.nonNegative()), id: Transaction.Bytes32 })
const decodeHead = decoder(HeadRecord)

const Header = Schema.Struct({
  parent: Transaction.Bytes32,
  height: Schema.Int.pipe(Schema.nonNegative()),
  producer: IdSchema,
  timeMs: Schema.Int.pipe(Schema.nonNegative())
})
const decodeHeader = decoder(Header)

const UndoRecord = Schema.Array(Schema.Tuple(Schema.Literal(...tableNames), Schema.Uint8ArrayFromSelf, Schema.NullOr(Schema.Uint8ArrayFromSelf)))
const decodeUndo = decoder(UndoRecord)

/** The producer of the genesis "block" (nobody). */
const nobody = Id.fromBytes(new Uint8Array(Id.bytes))

/** The stored head, if a genesis was written. */
export const readHead = (tables: Tables): Head | undefined => {
  const bytes = tables.get("meta", metaKey.head)
  return bytes === undefined ? undefined : decodeHead(bytes)
}

/** The last block the explorer index folded (height 0 once a genesis is written), if recorded. */
export const readIndexed = (tables: Tables): Head | undefined => {
  const bytes = tables.get("meta", metaKey.indexed)
  return bytes === undefined ? undefined : decodeHead(bytes)
}

/** Tables that remember the first previous value of every key they write (the undo record of one import). */
const journaled = (tables: Tables) => {
  const previous = new Map<string, readonly [Table, Uint8Array, Uint8Array | null]>()
  const remember = (table: Table, key: Uint8Array) => {
    const name = `${table}/${hex(key)}`
    if (!previous.has(name)) previous.set(name, [table, Uint8Array.from(key), tables.get(table, key) ?? null])
  }
  const wrapped: Tables = {
    ...tables,
    put: (table, key, value) => {
      remember(table, key)
      tables.put(table, key, value)
    },
    remove: (table, key) => {
      remember(table, key)
      tables.remove(table, key)
    },
    clear: () => {
      throw new Error("ledger store: an import never clears a table")
    }
  }
  return { tables: wrapped, undo: () => Array.from(previous.values()) }
}

const malformed = (block: ImportedBlock): string | undefined => {
  if (block.id.length !== Id.bytes || block.parent.length !== Id.bytes) return "block and parent ids are 32 bytes"
  if (!Number.isSafeInteger(block.height) || block.height < 1 || block.height > 0xffff_ffff) return `height ${block.height} is not in 1 … 2^32 − 1`
  if (!Number.isSafeInteger(block.timeMs) || block.timeMs < 0) return `time ${block.timeMs} is not a non-negative integer`
  if (Either.isLeft(Id.parse(block.producer))) return "the producer is not an account id"
  return undefined
}

/** Why `block` cannot be the next block (checked before any transaction runs), or nothing. */
const refusal = (tables: Tables, block: ImportedBlock, params: Params.Params, limits: LedgerLimits.Values): LedgerError | undefined => {
  const problem = malformed(block)
  if (problem !== undefined) return fail("Malformed", problem)
  const head = readHead(tables)
  if (head === undefined) return fail("UnknownParent", "the store holds no genesis yet")
  const stored = tables.get("meta", metaKey.params)
  if (stored === undefined || !equalBytes(stored, encode(params))) return fail("BadParams", "these are not the parameters of the stored genesis")
  if (block.height !== head.height + 1) return fail("BadSlot", `height ${block.height} does not follow the head at height ${head.height}`)
  if (!equalBytes(block.parent, head.id)) {
    return tables.get("headers", block.parent) === undefined
      ? fail("UnknownParent", `the parent 0x${hex(block.parent)} is not stored`)
      : fail("Stale", `the parent 0x${hex(block.parent)} is not the head: the block conflicts with the stored chain`)
  }
  if (tables.get("headers", block.id) !== undefined) return fail("Stale", `block 0x${hex(block.id)} is already stored`)
  if (block.txs.length > limits.transactionsPerBlockMax) return fail("TooLarge", `${block.txs.length} transactions, at most ${limits.transactionsPerBlockMax} per block`)
  if (block.bytes.length > limits.blockBytesMax) return fail("TooLarge", `${block.bytes.length} block bytes, at most ${limits.blockBytesMax}`)
  return undefined
}

/** Writes one step into the state and returns what the explorer will read of the state before it. */
const applyStep = (tables: Tables, step: Step): Prior => {
  const prior = priorOf(reader(tables), step.diff)
  writeDiff(tables, step.diff)
  return prior
}

/** The steps of a block's transactions, applied as they validate (their priors pushed to `priors`); a rejection aborts the import. */
const transactionSteps = (tables: Tables, block: ImportedBlock, params: Params.Params, limits: LedgerLimits.Values, priors: Array<Prior>): Array<Step> =>
  block.txs.map((transaction, index) => {
    const validated = State.validateWith(reader(tables), transaction, params, limits)
    if (Either.isLeft(validated)) return reject(new LedgerError({ ...validated.left, index }))
    const step: Step = { id: Either.getOrThrow(Transaction.id(transaction.body)), kind: transaction.body._tag, from: Transaction.sender(transaction.body), diff: validated.right }
    priors.push(applyStep(tables, step))
    return step
  })

/** The reward step: `State.reward` reads only `minted` and the producer's unclaimed rewards. */
const rewardStep = (tables: Tables, block: ImportedBlock, params: Params.Params): Step => {
  const base: State.State = { ...State.empty, minted: minted(tables), unclaimed: HashMap.make([block.producer, reader(tables).unclaimed(block.producer)]) }
  const diff = State.reward(base, block.producer, block.height, params)
  if (Either.isLeft(diff)) return reject(new LedgerError({ ...diff.left, index: block.txs.length }))
  return { id: Id.fromBytes(block.id), kind: "Reward", from: block.producer, diff: diff.right }
}

interface ChainRecord {
  readonly id: Uint8Array
  readonly parent: Uint8Array
  readonly height: number
  readonly producer: Id.Id
  readonly timeMs: number
  readonly bytes: Uint8Array
}

const writeChain = (tables: Tables, block: ChainRecord, steps: ReadonlyArray<Step>): void => {
  tables.put("headers", block.id, encode({ parent: block.parent, height: block.height, producer: block.producer, timeMs: block.timeMs }))
  tables.put("blocks", block.id, block.bytes)
  tables.put("heights", u32(block.height), block.id)
  tables.put("steps", u32(block.height), encode(steps))
  tables.put("meta", metaKey.head, encode({ height: block.height, id: block.id }))
}

/** Keeps the undo record of `height` and forgets those that fell out of the window (all of them, should the window have shrunk). */
const writeUndo = (tables: Tables, height: number, undo: ReadonlyArray<readonly [Table, Uint8Array, Uint8Array | null]>, kept: number) => {
  if (kept >= 1) tables.put("undo", u32(height), encode(undo))
  const oldestKept = height - kept + 1
  for (const { key } of tables.range("undo", oldestKept > 0xffff_ffff ? {} : { end: u32(Math.max(oldestKept, 0)) })) tables.remove("undo", key)
}

/** Imports the next block, all or nothing. */
export const importBlock = (tables: Tables, block: ImportedBlock, params: Params.Params, limits: LedgerLimits.Values): Either.Either<Head, LedgerError> => {
  const refused = refusal(tables, block, params, limits)
  if (refused !== undefined) return Either.left(refused)
  return run(tables, () => {
    const journal = journaled(tables)
    const priors: Array<Prior> = []
    const steps = transactionSteps(journal.tables, block, params, limits, priors)
    const reward = rewardStep(journal.tables, block, params)
    priors.push(applyStep(journal.tables, reward))
    writeChain(journal.tables, block, [...steps, reward])
    journal.tables.put("priors", u32(block.height), encode(priors))
    writeUndo(tables, block.height, journal.undo(), limits.undoBlocksMax)
    return { height: block.height, id: block.id }
  })
}

/** The default genesis block id: a digest of the parameters and allocations. */
export const genesisId = (params: Params.Params, allocations: ReadonlyArray<State.Allocation>): Uint8Array =>
  Canonical.digest(encode(["weft/ledger/store-genesis/v1", params, allocations.map(({ owner, amount }) => [owner, amount])]))

/** Writes the genesis state once; the same genesis again is a no-op, another one is WrongChain. */
export const initGenesis = (
  tables: Tables,
  params: Params.Params,
  allocations: ReadonlyArray<State.Allocation>,
  block: { readonly id: Uint8Array; readonly bytes: Uint8Array }
): Either.Either<Head, LedgerError> => {
  if (block.id.length !== Id.bytes) return Either.left(fail("Malformed", "a genesis id is 32 bytes"))
  const identity = encode({ id: block.id, params, allocations: allocations.map(({ owner, amount }) => [owner, amount]) })
  const stored = tables.get("meta", metaKey.genesis)
  if (stored !== undefined) {
    return equalBytes(stored, identity) ? Either.right(readHead(tables)!) : Either.left(fail("WrongChain", "the store holds another genesis (parameters, allocations or id differ)"))
  }
  return Either.flatMap(State.genesis(params, allocations), (applied) =>
    run(tables, () => {
      const step: Step = { id: Id.fromBytes(block.id), kind: "Genesis", diff: applied.diff }
      // The genesis is final by definition: the index folds it at once (against the empty state).
      record(tables, reader(tables), 0, 0, step)
      writeDiff(tables, step.diff)
      writeChain(tables, { id: block.id, parent: new Uint8Array(Id.bytes), height: 0, producer: nobody, timeMs: 0, bytes: block.bytes }, [step])
      tables.put("meta", metaKey.indexed, encode({ height: 0, id: block.id }))
      tables.put("meta", metaKey.genesis, identity)
      tables.put("meta", metaKey.params, encode(params))
      return { height: 0, id: block.id }
    }))
}

/** Undoes blocks down to `height`, in one transaction; Stale past the kept undo records. */
export const rollbackTo = (tables: Tables, height: number): Either.Either<Head, LedgerError> => {
  const head = readHead(tables)
  if (head === undefined) return Either.left(fail("UnknownParent", "the store holds no genesis yet"))
  if (!Number.isSafeInteger(height) || height < 0 || height > head.height) return Either.left(fail("Malformed", `height ${height} is not in 0 … ${head.height}`))
  const indexed = readIndexed(tables)?.height ?? 0
  if (height < indexed) return Either.left(fail("Stale", `block ${indexed} is finalized (the explorer folded it): no rollback below it`))
  return run(tables, () => {
    for (let current = head.height; current > height; current--) {
      const bytes = tables.get("undo", u32(current))
      if (bytes === undefined) return reject(fail("Stale", `block ${current} can no longer be undone (only the last undoBlocksMax are kept)`))
      for (const [table, key, old] of decodeUndo(bytes)) {
        if (old === null) tables.remove(table, key)
        else tables.put(table, key, old)
      }
      tables.remove("undo", u32(current))
    }
    return readHead(tables)!
  })
}

/**
 * Folds the stored blocks above the indexed one up to `finalized` into the explorer index, in one
 * transaction, and records `finalized` as indexed. Refused: Malformed (not a height of the stored
 * chain), Stale (another block is stored at that height: it is not on the store's chain). At or below
 * the indexed height it does nothing. A store without an indexed mark (written before the mark
 * existed) is refolded from the genesis.
 */
export const advanceIndex = (tables: Tables, finalized: Head): Either.Either<Head, LedgerError> => {
  const head = readHead(tables)
  if (head === undefined) return Either.left(fail("UnknownParent", "the store holds no genesis yet"))
  const { height } = finalized
  if (!Number.isSafeInteger(height) || height < 0 || height > head.height) return Either.left(fail("Malformed", `height ${height} is not in 0 … ${head.height}`))
  const stored = tables.get("heights", u32(height))
  if (stored === undefined || finalized.id.length !== Id.bytes || !equalBytes(stored, finalized.id)) {
    return Either.left(fail("Stale", `block 0x${hex(finalized.id)} is not the stored block at height ${height}`))
  }
  const indexed = readIndexed(tables)
  if (indexed !== undefined && height <= indexed.height) return Either.right(indexed)
  return run(tables, () => {
    if (indexed === undefined) rebuild(tables, height, height)
    else for (let at = indexed.height + 1; at <= height; at++) fold(tables, at)
    // A folded block never rolls back, so its prior is never read again (a reindex replays instead).
    for (let at = (indexed?.height ?? 0) + 1; at <= height; at++) tables.remove("priors", u32(at))
    const mark: Head = { height, id: Uint8Array.from(stored) }
    tables.put("meta", metaKey.indexed, encode(mark))
    return mark
  })
}

/** The stored block with this id. */
export const blockById = (tables: Tables, id: Uint8Array): Option.Option<StoredBlock> => {
  // Any other length is no id (and lmdb refuses keys past 1978 bytes with a throw).
  if (id.length !== Id.bytes) return Option.none()
  const header = tables.get("headers", id)
  const bytes = tables.get("blocks", id)
  if (header === undefined || bytes === undefined) return Option.none()
  const { parent, height, producer, timeMs } = decodeHeader(header)
  return Option.some({ id: Uint8Array.from(id), parent, height, producer, timeMs, bytes })
}

/** The stored block at a height of the chain. */
export const blockAt = (tables: Tables, height: number): Option.Option<StoredBlock> => {
  if (!Number.isSafeInteger(height) || height < 0 || height > 0xffff_ffff) return Option.none()
  const id = tables.get("heights", u32(height))
  return id === undefined ? Option.none() : blockById(tables, id)
}

const services = new WeakMap<Service, Tables>()

/** The tables behind a store service (for the explorer, which reads the same environment). */
export const tablesOf = (service: Service): Tables => {
  const tables = services.get(service)
  if (tables === undefined) throw new Error("ledger store: not a service made by LedgerStore")
  return tables
}

/** Remembers which tables a service reads (so `Explorer.layer` reads the same environment). */
export const register = (service: Service, tables: Tables): Service => {
  services.set(service, tables)
  return service
}
