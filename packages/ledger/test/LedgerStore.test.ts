import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Either, Exit, FastCheck as fc, Layer, Option } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Explorer from "../src/Explorer.js"
import * as Id from "../src/Id.js"
import type { LedgerError } from "../src/LedgerError.js"
import * as LedgerLimits from "../src/LedgerLimits.js"
import * as LedgerStore from "../src/LedgerStore.js"
import * as Params from "../src/Params.js"
import * as State from "../src/State.js"
import * as Transaction from "../src/Transaction.js"
import * as Wallet from "../src/Wallet.js"
import { tablesOf } from "../src/internal/storeCore.js"
import { accounts, allocations, buildChain, type Chain, genesisState, makeBlock, params } from "./crash/chain.js"

type Backend = "memory" | "lmdb"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "weft-ledger-store-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

const layerFor = (backend: Backend, dir: string, limits: Partial<LedgerLimits.Values> = {}) =>
  Explorer.layer.pipe(
    Layer.provideMerge(backend === "memory" ? LedgerStore.layerMemory : LedgerStore.layerLmdb(dir)),
    Layer.provide(LedgerLimits.layer(limits))
  )

/** Runs `body` against a fresh store of the backend (a fresh lmdb directory, removed afterwards). */
const withStore = <A, E>(backend: Backend, body: Effect.Effect<A, E, LedgerStore.LedgerStore | Explorer.Explorer>, limits: Partial<LedgerLimits.Values> = {}) =>
  Effect.scoped(Effect.flatMap(tempDir, (dir) => Effect.provide(body, layerFor(backend, dir, limits))))

const genesisId = LedgerStore.genesisId(params, allocations)

let shared: Chain | undefined
/** Twelve blocks of up to three transactions, built once (signing is the slow part). */
const chain = (): Chain => (shared ??= buildChain(genesisId, 12, 3, 7))

const bytesOf = (state: State.State) => Buffer.from(LedgerStore.encodeState(state)).toString("hex")

const importAll = (blocks: Chain["blocks"]) =>
  Effect.gen(function*() {
    const store = yield* LedgerStore.LedgerStore
    yield* store.initGenesis(params, allocations)
    for (const block of blocks) yield* store.importBlock(block, params)
  })

/** Marks the stored block at `height` final: the explorer folds up to it. */
const finalizeTo = (height: number) =>
  Effect.gen(function*() {
    const store = yield* LedgerStore.LedgerStore
    const block = Option.getOrThrow(yield* store.blockAt(height))
    return yield* store.advanceIndex({ height, id: block.id })
  })

/** Imports the blocks and finalizes all of them. */
const importFinal = (blocks: Chain["blocks"]) => Effect.zipRight(importAll(blocks), finalizeTo(blocks.length))

/** The explorer index of a fresh store (same backend) that imported the blocks and finalized them all in one advance. */
const freshIndex = (backend: Backend, blocks: Chain["blocks"]) =>
  withStore(backend, Effect.zipRight(importFinal(blocks), Effect.flatMap(Explorer.Explorer, (explorer) => explorer.dump)))

/** An account's whole history, page by page (each page at most `limit` entries). */
const fullHistory = (explorer: Explorer.Service, account: Id.Id, limit: number) =>
  Effect.gen(function*() {
    const entries: Array<Explorer.Entry> = []
    let from: Explorer.Cursor | undefined
    do {
      const page: Explorer.Page = yield* explorer.history(account, from === undefined ? { limit } : { from, limit })
      assert.isAtMost(page.entries.length, limit)
      assert.isTrue(page.next === undefined || page.entries.length > 0, "a page with a next cursor is not empty")
      entries.push(...page.entries)
      from = page.next
    } while (from !== undefined)
    return entries
  })

const failure = <A>(effect: Effect.Effect<A, LedgerError>) => Effect.map(Effect.either(effect), (result) => (Either.isLeft(result) ? result.left : undefined))

/** Everything a rejected import must leave as it was: head, state, explorer index. */
const picture = Effect.gen(function*() {
  const store = yield* LedgerStore.LedgerStore
  const explorer = yield* Explorer.Explorer
  const head = yield* store.head
  return { head: Option.map(head, ({ height, id }) => `${height}:${Buffer.from(id).toString("hex")}`), state: bytesOf(yield* store.stateSnapshot), index: JSON.stringify(yield* explorer.dump) }
})

const backends: ReadonlyArray<Backend> = ["memory", "lmdb"]

for (const backend of backends) {
  describe(`LedgerStore (${backend})`, () => {
    it.effect("imports a chain: the state is the pure fold, blocks are found by height and id", () =>
      withStore(backend, Effect.gen(function*() {
        const { blocks, states } = chain()
        const store = yield* LedgerStore.LedgerStore
        const genesis = yield* store.initGenesis(params, allocations)
        assert.strictEqual(genesis.height, 0)
        assert.deepStrictEqual(genesis.id, genesisId)
        assert.strictEqual(bytesOf(yield* store.stateSnapshot), bytesOf(genesisState()))
        for (const [index, block] of blocks.entries()) {
          const head = yield* store.importBlock(block, params)
          assert.strictEqual(head.height, index + 1)
          assert.strictEqual(bytesOf(yield* store.stateSnapshot), bytesOf(states[index + 1]!), `state after block ${index + 1}`)
        }
        assert.isTrue(blocks.some((block) => block.txs.length >= 2), "the chain has blocks of several transactions")
        const third = Option.getOrThrow(yield* store.blockAt(3))
        assert.deepStrictEqual(third.bytes, blocks[2]!.bytes)
        assert.deepStrictEqual(third.parent, blocks[1]!.id)
        assert.strictEqual(third.producer, blocks[2]!.producer)
        assert.deepStrictEqual(Option.getOrThrow(yield* store.block(blocks[5]!.id)).bytes, blocks[5]!.bytes)
        assert.isTrue(Option.isNone(yield* store.blockAt(blocks.length + 1)))
        assert.isTrue(Option.isNone(yield* store.block(new Uint8Array(32).fill(9))))
        for (const hostile of [new Uint8Array(0), blocks[0]!.id.subarray(0, 31), new Uint8Array(4096)]) assert.isTrue(Option.isNone(yield* store.block(hostile)))
        for (const height of [-1, 0.5, 2 ** 32, Number.NaN]) assert.isTrue(Option.isNone(yield* store.blockAt(height)))
        const reader = State.reader(states[blocks.length]!)
        for (const account of accounts) assert.strictEqual(store.reader.nonce(account.id), reader.nonce(account.id))
      })))

    it.effect("a wrong parent is UnknownParent (not stored) or Stale (stored, not the head); a wrong height is BadSlot; nothing is written", () =>
      withStore(backend, Effect.gen(function*() {
        const { blocks } = chain()
        const store = yield* LedgerStore.LedgerStore
        yield* importAll(blocks.slice(0, 3))
        const before = yield* picture
        const next = blocks[3]!
        const unknown = yield* failure(store.importBlock({ ...next, parent: new Uint8Array(32).fill(1) }, params))
        assert.strictEqual(unknown?.reason, "UnknownParent")
        const stale = yield* failure(store.importBlock({ ...next, parent: blocks[1]!.id }, params))
        assert.strictEqual(stale?.reason, "Stale")
        const again = yield* failure(store.importBlock({ ...blocks[2]!, height: 4, parent: blocks[2]!.id }, params))
        assert.strictEqual(again?.reason, "Stale", "a stored block is not imported twice")
        for (const height of [3, 5, 0]) assert.strictEqual((yield* failure(store.importBlock({ ...next, height }, params)))?.reason, height === 0 ? "Malformed" : "BadSlot")
        assert.strictEqual((yield* failure(store.importBlock({ ...next, id: new Uint8Array(31) }, params)))?.reason, "Malformed")
        assert.deepStrictEqual(yield* picture, before)
        assert.strictEqual((yield* store.importBlock(next, params)).height, 4, "the right block still imports")
      })))

    it.effect("an invalid transaction rejects the whole block with its index, and writes nothing", () =>
      withStore(backend, Effect.gen(function*() {
        const { blocks } = chain()
        const store = yield* LedgerStore.LedgerStore
        yield* importAll(blocks.slice(0, 4))
        const next = blocks.slice(4).find((block) => block.txs.length >= 2)!
        for (const block of blocks.slice(4, blocks.indexOf(next))) yield* store.importBlock(block, params)
        const before = yield* picture
        const replayed = next.txs[0]!
        const bad = makeBlock(next.parent, next.height, next.producer, [...next.txs, replayed])
        const error = yield* failure(store.importBlock(bad, params))
        assert.strictEqual(error?.reason, "Replay")
        assert.strictEqual(error?.index, next.txs.length)
        const tampered = { ...next.txs[1]!, auth: { ...next.txs[1]!.auth, signature: next.txs[1]!.auth.signature.map((byte, at) => (at === 5 ? byte ^ 1 : byte)) } }
        const badSignature = yield* failure(store.importBlock(makeBlock(next.parent, next.height, next.producer, [next.txs[0]!, tampered]), params))
        assert.strictEqual(badSignature?.reason, "BadSignature")
        assert.strictEqual(badSignature?.index, 1)
        assert.deepStrictEqual(yield* picture, before)
        assert.strictEqual((yield* store.importBlock(next, params)).height, next.height, "the valid block imports after the rejections")
      })))

    it.effect("TooLarge past transactionsPerBlockMax or blockBytesMax, before any transaction runs", () =>
      withStore(backend, Effect.gen(function*() {
        const { blocks } = chain()
        const store = yield* LedgerStore.LedgerStore
        yield* importAll([])
        const big = blocks.find((block) => block.txs.length >= 2)!
        assert.isAtMost(blocks[0]!.txs.length, 3)
        const before = yield* picture
        const error = yield* failure(store.importBlock({ ...blocks[0]!, txs: [...big.txs, ...big.txs] }, params))
        assert.strictEqual(error?.reason, "TooLarge")
        const bytes = yield* failure(store.importBlock({ ...blocks[0]!, bytes: new Uint8Array(4097) }, params))
        assert.strictEqual(bytes?.reason, "TooLarge", "past blockBytesMax")
        assert.deepStrictEqual(yield* picture, before)
        assert.strictEqual((yield* store.importBlock({ ...blocks[0]!, bytes: new Uint8Array(4096) }, params)).height, 1, "exactly blockBytesMax imports")
      }), { transactionsPerBlockMax: 3, blockBytesMax: 4096 }))

    it.effect("genesis: the same again is a no-op, another is WrongChain; importing needs a genesis and its parameters", () =>
      withStore(backend, Effect.gen(function*() {
        const { blocks } = chain()
        const store = yield* LedgerStore.LedgerStore
        assert.isTrue(Option.isNone(yield* store.head))
        assert.strictEqual((yield* failure(store.importBlock(blocks[0]!, params)))?.reason, "UnknownParent")
        yield* importAll(blocks.slice(0, 2))
        const head = yield* store.initGenesis(params, allocations)
        assert.strictEqual(head.height, 2, "initGenesis on a store with that genesis returns the head")
        const other = Either.getOrThrow(Params.make({ ...params, initialRewardUnits: 1n as never }))
        assert.strictEqual((yield* failure(store.initGenesis(other, allocations)))?.reason, "WrongChain")
        assert.strictEqual((yield* failure(store.initGenesis(params, allocations.slice(1))))?.reason, "WrongChain")
        assert.strictEqual((yield* failure(store.initGenesis(params, allocations, { id: new Uint8Array(32).fill(4), bytes: new Uint8Array(1) })))?.reason, "WrongChain")
        assert.strictEqual((yield* failure(store.importBlock(blocks[2]!, other)))?.reason, "BadParams")
      })))

    it.effect("the index folds finalized blocks only: imports leave it alone, advanceIndex folds in steps or at once to the same bytes, and refuses what is not the stored chain", () =>
      withStore(backend, Effect.gen(function*() {
        const { blocks } = chain()
        const store = yield* LedgerStore.LedgerStore
        const explorer = yield* Explorer.Explorer
        assert.strictEqual((yield* failure(store.advanceIndex({ height: 0, id: genesisId })))?.reason, "UnknownParent")
        assert.isTrue(Option.isNone(yield* explorer.indexed))
        yield* importAll([])
        const genesisOnly = yield* explorer.dump
        assert.isAbove(genesisOnly.length, 0, "the genesis is final at once")
        yield* importAll(blocks)
        assert.deepStrictEqual(yield* explorer.dump, genesisOnly, "imports do not touch the index")
        assert.strictEqual(Option.getOrThrow(yield* explorer.indexed).height, 0)
        assert.deepStrictEqual(yield* explorer.reindex, { blocks: 1, digest: yield* explorer.digest }, "a reindex folds up to the indexed block only")
        assert.deepStrictEqual(yield* explorer.dump, genesisOnly)
        const before = yield* picture
        assert.strictEqual((yield* failure(store.advanceIndex({ height: blocks.length + 1, id: blocks[0]!.id })))?.reason, "Malformed", "above the head")
        assert.strictEqual((yield* failure(store.advanceIndex({ height: -1, id: blocks[0]!.id })))?.reason, "Malformed")
        assert.strictEqual((yield* failure(store.advanceIndex({ height: 4, id: blocks[2]!.id })))?.reason, "Stale", "not the block stored at that height")
        assert.strictEqual((yield* failure(store.advanceIndex({ height: 4, id: new Uint8Array(5) })))?.reason, "Stale")
        assert.deepStrictEqual(yield* picture, before, "a refused advance writes nothing")
        for (const height of [3, 3, 2, 7, blocks.length]) {
          const indexed = yield* explorer.advance({ height, id: Option.getOrThrow(yield* store.blockAt(height)).id })
          assert.strictEqual(indexed.height, Math.max(height, 3), "at or below the indexed block, nothing moves")
        }
        const stepwise = yield* explorer.dump
        const reindexed = yield* explorer.reindex
        assert.strictEqual(reindexed.blocks, blocks.length + 1)
        assert.deepStrictEqual(yield* explorer.dump, stepwise, "a reindex gives the bytes the stepwise fold wrote")
        assert.strictEqual(tablesOf(store).range("priors").length, 0, "folded blocks keep no priors")
        const onePass = yield* freshIndex(backend, blocks)
        assert.deepStrictEqual(onePass, stepwise, "one advance over the whole chain gives the same bytes as several")
      })))

    it.effect("rollbackTo never touches the index and refuses to go below the indexed (finalized) block", () =>
      withStore(backend, Effect.gen(function*() {
        const { blocks, states } = chain()
        const store = yield* LedgerStore.LedgerStore
        const explorer = yield* Explorer.Explorer
        yield* importAll(blocks.slice(0, 8))
        yield* finalizeTo(5)
        const index = yield* explorer.dump
        const refused = yield* failure(store.rollbackTo(4))
        assert.strictEqual(refused?.reason, "Stale")
        assert.strictEqual(Option.getOrThrow(yield* store.head).height, 8)
        assert.strictEqual((yield* store.rollbackTo(5)).height, 5, "down to the indexed block is allowed")
        assert.strictEqual(bytesOf(yield* store.stateSnapshot), bytesOf(states[5]!))
        assert.deepStrictEqual(yield* explorer.dump, index, "the rollback left the index as it was")
        for (const block of blocks.slice(5)) yield* store.importBlock(block, params)
        yield* finalizeTo(blocks.length)
        const folded = yield* explorer.dump
        const fresh = yield* freshIndex(backend, blocks)
        assert.deepStrictEqual(folded, fresh, "re-imported blocks fold from the priors of their new import")
      })))

    it.effect("rollbackTo restores state, chain and index exactly; deeper than undoBlocksMax is Stale", () =>
      withStore(backend, Effect.gen(function*() {
        const { blocks, states } = chain()
        const store = yield* LedgerStore.LedgerStore
        const explorer = yield* Explorer.Explorer
        yield* importAll(blocks.slice(0, 6))
        const at6 = yield* picture
        for (const block of blocks.slice(6, 10)) yield* store.importBlock(block, params)
        assert.strictEqual((yield* failure(store.rollbackTo(5)))?.reason, "Stale", "only the last four blocks can be undone")
        assert.strictEqual((yield* failure(store.rollbackTo(11)))?.reason, "Malformed")
        assert.strictEqual((yield* store.head).pipe(Option.getOrThrow).height, 10, "a refused rollback undoes nothing")
        const head = yield* store.rollbackTo(6)
        assert.strictEqual(head.height, 6)
        assert.deepStrictEqual(yield* picture, at6)
        assert.strictEqual(bytesOf(yield* store.stateSnapshot), bytesOf(states[6]!))
        assert.isTrue(Option.isNone(yield* store.blockAt(7)))
        assert.isTrue(Option.isNone(yield* store.block(blocks[7]!.id)))
        for (const block of blocks.slice(6)) yield* store.importBlock(block, params)
        assert.strictEqual(bytesOf(yield* store.stateSnapshot), bytesOf(states[blocks.length]!), "the chain imports again after a rollback")
        const dump = yield* explorer.dump
        yield* explorer.reindex
        assert.deepStrictEqual(yield* explorer.dump, dump)
      }), { undoBlocksMax: 4 }))

    it.effect("reindex rebuilds a damaged index to the same bytes; a state that the steps do not replay to is a defect that writes nothing", () =>
      withStore(backend, Effect.gen(function*() {
        const { blocks } = chain()
        const explorer = yield* Explorer.Explorer
        assert.deepStrictEqual(yield* explorer.reindex, { blocks: 0, digest: yield* explorer.digest }, "nothing to fold before a genesis")
        yield* importFinal(blocks)
        const sound = { digest: yield* explorer.digest, dump: yield* explorer.dump }
        const tables = tablesOf(yield* LedgerStore.LedgerStore)
        const [balance] = tables.range("balances", { limit: 1 })
        const [entry] = tables.range("history", { limit: 1 })
        tables.transaction(() => {
          tables.remove("balances", balance!.key)
          tables.put("history", entry!.key, new Uint8Array([1, 2, 3]))
          tables.put("history", new Uint8Array(40).fill(0xee), new Uint8Array(1))
        })
        const damaged = yield* explorer.digest
        assert.notDeepEqual(damaged, sound.digest, "the digest sees the damage")
        const reindexed = yield* explorer.reindex
        assert.deepStrictEqual(reindexed.digest, sound.digest)
        assert.deepStrictEqual(yield* explorer.dump, sound.dump)
        const [coin] = tables.range("coins", { limit: 1 })
        tables.transaction(() => tables.remove("coins", coin!.key))
        const exit = yield* Effect.exit(explorer.reindex)
        assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause), "a state the stored steps do not replay to is a defect")
        assert.deepStrictEqual(yield* explorer.digest, sound.digest, "the failed reindex wrote nothing")
      })))

    it.effect("explorer: balances are Wallet.balance of the fold, history pages in order, reindex gives the same bytes", () =>
      withStore(backend, Effect.gen(function*() {
        const { blocks, states } = chain()
        const explorer = yield* Explorer.Explorer
        yield* importFinal(blocks)
        const state = states[blocks.length]!
        for (const account of accounts) {
          const balance = yield* explorer.balance(account.id)
          const expected = Wallet.balance(state, account.id)
          assert.deepStrictEqual({ ...balance }, { spendable: expected.spendable, incoming: expected.incoming, unclaimed: expected.unclaimed })
        }
        const incremental = yield* explorer.dump
        assert.isAbove(incremental.length, 20)
        const digest = yield* explorer.digest
        const reindexed = yield* explorer.reindex
        assert.strictEqual(reindexed.blocks, blocks.length + 1)
        assert.deepStrictEqual(reindexed.digest, digest, "the same digest after reindex")
        assert.deepStrictEqual(yield* explorer.dump, incremental, "byte-identical after reindex")
        // historyEntriesMax is 5 here: a whole history takes several pages, whatever limit is asked.
        for (const { id } of accounts) {
          const holdings = Wallet.balance(state, id)
          const entries = yield* fullHistory(explorer, id, 1000)
          assert.strictEqual(entries.reduce((sum, entry) => sum + entry.delta, 0n), holdings.spendable + holdings.incoming + holdings.unclaimed, "the deltas sum to the holdings")
        }
        const account = accounts[0]!.id
        const all = yield* fullHistory(explorer, account, 1000)
        assert.isAbove(all.length, 5, "the history is longer than one page")
        assert.strictEqual(all[0]!.kind, "Genesis")
        const positions = all.map((entry) => entry.height * 10_000 + entry.index)
        assert.deepStrictEqual(positions, [...positions].sort((a, b) => a - b), "oldest first")
        assert.isTrue(all.some((entry) => entry.kind === "Reward" && entry.txId === Id.fromBytes(blocks.find((block) => block.producer === account)!.id)))
        assert.deepStrictEqual(yield* fullHistory(explorer, account, 3), all, "pages of 3 give the same entries")
        const first = yield* explorer.history(account, { limit: 1_000_000 })
        assert.deepStrictEqual(first.entries, all.slice(0, 5), "limit is cut to historyEntriesMax")
        assert.deepStrictEqual(first.next, { height: all[5]!.height, index: all[5]!.index })
        assert.deepStrictEqual((yield* explorer.history(account, { limit: 0 })).entries, [])
        assert.deepStrictEqual((yield* explorer.history(account, { limit: Number.NaN })).entries, [])
        for (const hostile of ["", "00", account.slice(0, 2), account.toUpperCase(), `${account}00`]) {
          assert.deepStrictEqual((yield* explorer.history(hostile as Id.Id, { limit: 3 })).entries, [], `no history for ${JSON.stringify(hostile)}`)
          assert.deepStrictEqual({ ...(yield* explorer.balance(hostile as Id.Id)) }, { spendable: 0n, incoming: 0n, unclaimed: 0n })
        }
        for (const from of [{ height: -1, index: 0 }, { height: 0, index: 2 ** 32 }, { height: 0.5, index: 0 }]) {
          assert.deepStrictEqual((yield* explorer.history(account, { from, limit: 3 })).entries, [], "a cursor out of range reads nothing")
        }
        const transfer = blocks.flatMap((block) => block.txs).find((tx) => tx.body._tag === "Transfer")!
        const txId = Either.getOrThrow(Transaction.id(transfer.body))
        const senderEntry = (yield* fullHistory(explorer, Transaction.sender(transfer.body), 1000)).find((entry) => entry.txId === txId)!
        assert.strictEqual(senderEntry.counterparty, Id.fromBytes((transfer.body as typeof Transaction.Transfer.Type).recipient))
        assert.isTrue(senderEntry.delta < 0n)
      }), { historyEntriesMax: 5 }))
  })
}

describe("LedgerStore (lmdb, reopened)", () => {
  it.effect("state, chain and index survive a reopen; another genesis in the same directory is WrongChain", () =>
    Effect.scoped(Effect.gen(function*() {
      const { blocks, states } = chain()
      const dir = yield* tempDir
      const reopen = <A, E>(body: Effect.Effect<A, E, LedgerStore.LedgerStore | Explorer.Explorer>) => Effect.provide(body, layerFor("lmdb", dir))
      const dump = yield* reopen(Effect.zipRight(Effect.zipRight(importAll(blocks.slice(0, 5)), finalizeTo(4)), Effect.flatMap(Explorer.Explorer, (explorer) => explorer.dump)))
      yield* reopen(Effect.gen(function*() {
        const store = yield* LedgerStore.LedgerStore
        assert.strictEqual((yield* store.initGenesis(params, allocations)).height, 5)
        assert.strictEqual(bytesOf(yield* store.stateSnapshot), bytesOf(states[5]!))
        assert.deepStrictEqual(yield* (yield* Explorer.Explorer).dump, dump)
        assert.strictEqual(Option.getOrThrow(yield* store.indexed).height, 4, "the indexed mark survives a reopen")
        assert.strictEqual((yield* failure(store.rollbackTo(3)))?.reason, "Stale")
        assert.strictEqual((yield* failure(store.initGenesis(params, allocations.slice(0, 2))))?.reason, "WrongChain")
        yield* store.importBlock(blocks[5]!, params)
      }))
      const head = yield* reopen(Effect.flatMap(LedgerStore.LedgerStore, (store) => store.head))
      assert.strictEqual(Option.getOrThrow(head).height, 6)
    })))
})

describe("LedgerStore (lmdb, undo window)", () => {
  it.effect("a smaller undoBlocksMax on reopen prunes every record that fell out of the window in the next import", () =>
    Effect.scoped(Effect.gen(function*() {
      const { blocks, states } = chain()
      const dir = yield* tempDir
      yield* Effect.provide(importAll(blocks.slice(0, 6)), layerFor("lmdb", dir))
      yield* Effect.provide(Effect.gen(function*() {
        const store = yield* LedgerStore.LedgerStore
        yield* store.importBlock(blocks[6]!, params)
        assert.deepStrictEqual(tablesOf(store).range("undo").map(({ key }) => Buffer.from(key).readUInt32BE(0)), [6, 7])
        assert.strictEqual((yield* failure(store.rollbackTo(4)))?.reason, "Stale")
        assert.strictEqual((yield* store.rollbackTo(5)).height, 5)
        assert.strictEqual(bytesOf(yield* store.stateSnapshot), bytesOf(states[5]!))
      }), layerFor("lmdb", dir, { undoBlocksMax: 2 }))
    })))
})

describe("LedgerStore (property)", () => {
  it.effect.prop(
    "random valid chains give identical memory and lmdb snapshots, equal to the pure fold, and a reindex-stable index",
    [fc.integer({ min: 1, max: 2 ** 31 - 1 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 4 })],
    ([seed, count, perBlock]) =>
      Effect.gen(function*() {
        const { blocks, states } = buildChain(genesisId, count, perBlock, seed)
        const run = (backend: Backend) =>
          withStore(backend, Effect.gen(function*() {
            yield* importAll(blocks)
            // Finality in two steps, as a node sees it move.
            yield* finalizeTo(Math.floor(count / 2))
            yield* finalizeTo(count)
            const explorer = yield* Explorer.Explorer
            const dump = yield* explorer.dump
            const digest = Buffer.from(yield* explorer.digest).toString("hex")
            assert.strictEqual(Buffer.from((yield* explorer.reindex).digest).toString("hex"), digest)
            assert.deepStrictEqual(yield* explorer.dump, dump)
            return { state: bytesOf(yield* (yield* LedgerStore.LedgerStore).stateSnapshot), dump, digest }
          }))
        const memory = yield* run("memory")
        const lmdb = yield* run("lmdb")
        assert.strictEqual(memory.state, bytesOf(states[count]!))
        assert.deepStrictEqual(lmdb, memory)
      }),
    { fastCheck: { numRuns: 6 } }
  )

  it.effect("a rejected import rolls back the memory backend too (no journal leaks into the next transaction)", () =>
    withStore("memory", Effect.gen(function*() {
      const { blocks } = chain()
      const store = yield* LedgerStore.LedgerStore
      const target = blocks.findIndex((block) => block.txs.length >= 1)
      yield* importAll(blocks.slice(0, target))
      const block = blocks[target]!
      const bad = makeBlock(block.parent, block.height, block.producer, [...block.txs, ...block.txs])
      assert.isTrue(Exit.isFailure(yield* Effect.exit(store.importBlock(bad, params))))
      yield* store.importBlock(block, params)
      assert.strictEqual(Option.getOrThrow(yield* store.head).height, block.height)
    })))
})
