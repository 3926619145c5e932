import { assert, describe, it } from "@effect/vitest"
import { Canonical, Gossip, Node, type NodeId, Store, StoreSync, TransportMemory } from "@weft/core"
import { Context, Duration, Effect, Either, Layer, Option } from "effect"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Account from "../src/Account.js"
import * as Block from "../src/Block.js"
import * as Consensus from "../src/Consensus.js"
import * as Explorer from "../src/Explorer.js"
import * as Id from "../src/Id.js"
import * as LedgerLimits from "../src/LedgerLimits.js"
import * as LedgerNode from "../src/LedgerNode.js"
import * as LedgerRpc from "../src/LedgerRpc.js"
import * as LedgerStore from "../src/LedgerStore.js"
import * as Params from "../src/Params.js"
import * as State from "../src/State.js"
import * as Transaction from "../src/Transaction.js"
import * as Wallet from "../src/Wallet.js"
import { encodeObject, topics } from "../src/internal/nodeWire.js"

const seeded = (byte: number) => Account.generate(new Uint8Array(32).fill(byte))
const authorities = [seeded(11), seeded(12), seeded(13)]
const user = seeded(21)
const friend = seeded(22)
const outsider = seeded(23)
const blockTimeMs = 250

const makeGenesis = (): Block.Genesis => {
  const params = Either.getOrThrow(Params.make({ chainId: "weft-node-test", blockTimeMs }))
  return {
    params,
    allocations: [{ owner: user.id, amount: (100n * params.unitsPerToken) as never }],
    authorities: authorities.map((account) => ({ id: account.id, publicKey: account.publicKey })),
    timeMs: Date.now()
  }
}

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "weft-ledgernode-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

type Services = Node.Services | LedgerNode.LedgerNode | Consensus.Consensus | LedgerStore.LedgerStore | Store.Store | StoreSync.StoreSync

interface Member {
  readonly context: Context.Context<Services>
  readonly id: NodeId.NodeId
  readonly ledger: LedgerNode.Service
  readonly address: string
}

const ledgerLayer = (genesis: Block.Genesis, authority: Account.Account | undefined, autoClaim?: boolean) =>
  LedgerRpc.layerWithExplorer.pipe(
    Layer.provideMerge(LedgerNode.layer({ genesis, authority, autoClaim })),
    Layer.provideMerge(Layer.mergeAll(Consensus.layer({ genesis }), LedgerStore.layerMemory, StoreSync.layer.pipe(Layer.provideMerge(Store.layerMemory)))),
    Layer.provideMerge(LedgerLimits.layer())
  )

const plainNode = (dir: string, network: TransportMemory.MemoryNetwork, psk: Uint8Array, name: string) =>
  Layer.build(Node.layer({ dataDir: Path.join(dir, name), transport: TransportMemory.layer(network), network: { psk }, control: false }))

const member = (dir: string, network: TransportMemory.MemoryNetwork, psk: Uint8Array, name: string, genesis: Block.Genesis, authority?: Account.Account, autoClaim?: boolean) =>
  Effect.gen(function*() {
    const base = yield* plainNode(dir, network, psk, name)
    const context = yield* Layer.build(ledgerLayer(genesis, authority, autoClaim)).pipe(Effect.provide(base))
    const full = Context.merge(base, context) as Context.Context<Services>
    const node = Context.get(full, Node.Node)
    const address = (yield* node.status).transports[0]!.address
    return { context: full, id: node.id, ledger: Context.get(full, LedgerNode.LedgerNode), address } satisfies Member
  })

const connect = (from: { readonly context: Context.Context<Node.Node> }, to: { readonly address: string }) =>
  Context.get(from.context, Node.Node).connect(to.address)

const network = (count: number, genesis: Block.Genesis, autoClaim?: boolean) =>
  Effect.gen(function*() {
    const dir = yield* tempDir
    const memory = yield* TransportMemory.makeNetwork()
    const psk = new Uint8Array(randomBytes(32))
    const members: Array<Member> = []
    for (let index = 0; index < count; index++) members.push(yield* member(dir, memory, psk, `n${index}`, genesis, authorities[index], autoClaim))
    for (const [index, from] of members.entries()) for (const to of members.slice(0, index)) yield* connect(from, to)
    return { dir, memory, psk, members }
  })

/** Polls `check` every 50 ms until it holds, failing after `timeout`. */
const eventually = <E>(what: string, check: Effect.Effect<boolean, E>, timeout: Duration.DurationInput = "20 seconds") =>
  Effect.gen(function*() {
    const deadline = Date.now() + Duration.toMillis(Duration.decode(timeout))
    while (Date.now() < deadline) {
      if (yield* check) return
      yield* Effect.sleep("50 millis")
    }
    return yield* Effect.dieMessage(`not within ${Duration.format(Duration.decode(timeout))}: ${what}`)
  })

const transfer = (ledger: LedgerNode.Service, from: Account.Account, to: Account.Account, tokens: bigint) =>
  Effect.gen(function*() {
    const state = yield* ledger.state
    const bodies = Either.getOrThrow(Wallet.planTransfer(state, from.id, { amount: (tokens * ledger.params.unitsPerToken) as never, recipient: to.id }, ledger.params))
    const [tx] = Either.getOrThrow(Wallet.signAll(bodies, from))
    return { tx: tx!, bytes: Either.getOrThrow(Transaction.encode(tx!)), id: Either.getOrThrow(Transaction.id(tx!.body)) }
  })

const storeBytes = (m: Member) =>
  Effect.map(Context.get(m.context, LedgerStore.LedgerStore).stateSnapshot, (state) => Buffer.from(LedgerStore.encodeState(state)).toString("hex"))

/** The explorer over a member's ledger store. */
const explorerOf = <A>(m: Member, use: (explorer: Explorer.Service) => Effect.Effect<A>) =>
  Effect.flatMap(Explorer.Explorer, use).pipe(
    Effect.provide(Explorer.layer),
    Effect.provide(m.context as Context.Context<Services | LedgerLimits.LedgerLimits>)
  )

const rewardsOf = (state: State.State, account: Account.Account) => ({
  coins: Wallet.coins(state, account.id),
  unclaimed: State.reader(state).unclaimed(account.id)
})

const headOf = (m: Member) => Context.get(m.context, LedgerStore.LedgerStore).head.pipe(Effect.map(Option.map((h) => Buffer.from(h.id).toString("hex"))))

describe("LedgerNode", () => {
  it.scopedLive("a transfer submitted at one node is in a block at every node, and every store follows", () =>
    Effect.gen(function*() {
      const genesis = makeGenesis()
      const { members } = yield* network(3, genesis)
      const sent = yield* transfer(members[0]!.ledger, user, friend, 5n)
      const id = yield* members[0]!.ledger.submit(sent.bytes)
      assert.strictEqual(id, sent.id)
      yield* eventually("the transfer is included at every node", Effect.map(
        Effect.forEach(members, (m) => m.ledger.included(id)),
        (heights) => heights.every(Option.isSome)
      ))
      const heights = yield* Effect.forEach(members, (m) => m.ledger.included(id))
      assert.strictEqual(new Set(heights.map((h) => Option.getOrThrow(h))).size, 1)
      // The friend holds one pending transaction of 5 tokens at every node.
      for (const m of members) {
        const state = yield* m.ledger.state
        const pending = Wallet.pending(state, friend.id).incoming
        assert.strictEqual(pending.length, 1)
        assert.strictEqual(pending[0]!.amount, 5n * genesis.params.unitsPerToken)
      }
      // Each LedgerStore follows its consensus head: same head id, byte-identical state.
      yield* eventually("stores agree", Effect.gen(function*() {
        const heads = yield* Effect.forEach(members, headOf)
        const states = yield* Effect.forEach(members, storeBytes)
        const again = yield* Effect.forEach(members, headOf)
        const same = (xs: ReadonlyArray<unknown>) => xs.every((x) => JSON.stringify(x) === JSON.stringify(xs[0]))
        return same(heads) && same(again) && JSON.stringify(heads) === JSON.stringify(again) && same(states)
      }))
      // Round-robin slots: every authority gets its turn (the transfer may have gone into any one's block).
      yield* eventually("every authority produces", Effect.map(
        Effect.forEach(members, (m) => m.ledger.stats),
        (all) => all.every((stats) => stats.blocksProduced > 0)
      ))
      yield* eventually("blocks become final with all three authorities up", Effect.map(members[2]!.ledger.finalized, (f) => f.height > 0))
      // The explorer folds finalized blocks only: it stands at the finalized block, with its balances.
      const node = members[2]!
      yield* eventually("the explorer index reaches a finalized block above the genesis, with the finalized balances", Effect.gen(function*() {
        const finalized = yield* node.ledger.finalized
        const indexed = yield* explorerOf(node, (explorer) => explorer.indexed)
        if (finalized.height === 0 || Option.getOrThrow(indexed).height !== finalized.height) return false
        assert.deepStrictEqual(Option.getOrThrow(indexed).id, Id.toBytes(finalized.id))
        for (const account of [user, friend, ...authorities]) {
          const balance = yield* explorerOf(node, (explorer) => explorer.balance(account.id))
          const expected = Wallet.balance(finalized.state, account.id)
          assert.deepStrictEqual({ ...balance }, { spendable: expected.spendable, incoming: expected.incoming, unclaimed: expected.unclaimed }, "explorer balance = finalized state")
        }
        return true
      }))
      const head = yield* node.ledger.head
      assert.isAtMost(Option.getOrThrow(yield* explorerOf(node, (explorer) => explorer.indexed)).height, head.height)
      // The index may advance between reading its digest and reindexing: compare a pair taken with no block
      // finalized in between (the chain finalizes every few seconds, so one of the first tries is such a pair).
      yield* eventually("a reindex on a running node gives the same bytes as the index it replaces", Effect.gen(function*() {
        const indexed = Option.getOrThrow(yield* explorerOf(node, (explorer) => explorer.indexed))
        const digest = yield* explorerOf(node, (explorer) => explorer.digest)
        const reindexed = yield* explorerOf(node, (explorer) => explorer.reindex)
        assert.isAtLeast(reindexed.blocks, indexed.height + 1, "the reindex folds up to the indexed block")
        if (reindexed.blocks !== indexed.height + 1) return false
        assert.deepStrictEqual(reindexed.digest, digest)
        return true
      }))
      const store = Context.get(node.context, LedgerStore.LedgerStore)
      const finalIndexed = Option.getOrThrow(yield* store.indexed).height
      assert.isAtLeast(finalIndexed, 1)
      const refused = yield* Effect.either(store.rollbackTo(finalIndexed - 1))
      assert.isTrue(Either.isLeft(refused) && refused.left.reason === "Stale", "no rollback below the finalized index")
    }), { timeout: 60_000 })

  it.scopedLive("an authority claims its rewards on its own, merged into one coin; with autoClaim off they wait for a Mint", () =>
    Effect.gen(function*() {
      const genesis = makeGenesis()
      const auto = yield* network(3, genesis)
      const producer = auto.members[0]!
      // Each claim merges into the coin of the one before: rewards of several claims, still one coin.
      yield* eventually("two automatic claims included, the rewards of both in one coin", Effect.gen(function*() {
        const stats = yield* producer.ledger.stats
        const held = rewardsOf(yield* producer.ledger.state, authorities[0]!)
        return stats.claimsSubmitted >= 2 && held.coins.length === 1 && held.coins[0]!.coin.amount > genesis.params.initialRewardUnits
      }), "40 seconds")
      const held = rewardsOf(yield* producer.ledger.state, authorities[0]!)
      assert.strictEqual(held.coins.length, 1)

      const manual = yield* network(3, { ...genesis, params: { ...genesis.params, chainId: "weft-node-test-manual" } }, false)
      const owner = manual.members[1]!
      yield* eventually("rewards accrue unclaimed", Effect.map(owner.ledger.state, (state) => rewardsOf(state, authorities[1]!).unclaimed > 0n))
      const before = (yield* owner.ledger.head).height
      yield* eventually("several more blocks", Effect.map(owner.ledger.head, (head) => head.height >= before + 2 * 4 + 2))
      const waiting = rewardsOf(yield* owner.ledger.state, authorities[1]!)
      assert.strictEqual(waiting.coins.length, 0, "nothing claimed without a Mint")
      assert.isTrue(waiting.unclaimed > genesis.params.initialRewardUnits)
      assert.strictEqual((yield* owner.ledger.stats).claimsSubmitted, 0)
      const body = Either.getOrThrow(Wallet.planClaim(yield* owner.ledger.state, authorities[1]!.id, owner.ledger.params))
      const mint = Either.getOrThrow(Transaction.sign({ ...body, nonce: yield* owner.ledger.nextNonce(authorities[1]!.id) }, authorities[1]!))
      const id = yield* owner.ledger.submit(Either.getOrThrow(Transaction.encode(mint)))
      yield* eventually("the Mint is included", Effect.map(owner.ledger.included(id), Option.isSome))
      const claimed = rewardsOf(yield* owner.ledger.state, authorities[1]!)
      assert.strictEqual(claimed.coins.length, 1)
      assert.isTrue(claimed.coins[0]!.coin.amount >= waiting.unclaimed, "one coin with every reward accrued until the Mint")
    }), { timeout: 90_000 })

  it.scopedLive("a late joiner catches up through store sync to the same head and byte-identical state", () =>
    Effect.gen(function*() {
      const genesis = makeGenesis()
      const net = yield* network(3, genesis)
      const sent = yield* transfer(net.members[0]!.ledger, user, friend, 7n)
      yield* net.members[0]!.ledger.submit(sent.bytes)
      yield* eventually("a few blocks", Effect.map(net.members[0]!.ledger.head, (head) => head.height >= 8))
      const late = yield* member(net.dir, net.memory, net.psk, "late", genesis)
      yield* connect(late, net.members[0]!)
      const target = yield* net.members[0]!.ledger.head
      yield* eventually("the late joiner holds the head it joined at", Effect.map(
        Context.get(late.context, Consensus.Consensus).block(target.id), Option.isSome))
      yield* eventually("same store head and byte-identical store state", Effect.gen(function*() {
        const [a, b] = [yield* headOf(net.members[0]!), yield* headOf(late)]
        const [sa, sb] = [yield* storeBytes(net.members[0]!), yield* storeBytes(late)]
        const [a2, b2] = [yield* headOf(net.members[0]!), yield* headOf(late)]
        return Option.isSome(a) && JSON.stringify([a, a2, b, b2].map(Option.getOrNull)) === JSON.stringify([a, a, a, a].map(Option.getOrNull)) && sa === sb
      }))
      const stats = yield* late.ledger.stats
      assert.isTrue(stats.catchUpBlocksFetched > 0, "blocks came through store sync")
      assert.isTrue(stats.catchUpBlocksImported > 0)
      assert.isTrue(Option.isSome(yield* late.ledger.included(sent.id)), "the old transfer is known to the late joiner")
    }), { timeout: 60_000 })

  it.scopedLive("hostile inputs get a typed error and a counter, never a crash", () =>
    Effect.gen(function*() {
      const genesis = makeGenesis()
      const net = yield* network(3, genesis)
      const victim = net.members[1]!
      const hostileContext = yield* plainNode(net.dir, net.memory, net.psk, "hostile")
      const hostileSync = yield* Layer.build(StoreSync.layer.pipe(Layer.provideMerge(Store.layerMemory))).pipe(Effect.provide(hostileContext))
      const hostile = { context: hostileContext, id: Context.get(hostileContext, Node.Node).id }
      yield* connect(hostile, victim)
      const gossip = Context.get(hostileContext, Gossip.Gossip)
      const chainTopics = topics(genesis.params.chainId)
      yield* eventually("a block or two", Effect.map(victim.ledger.head, (head) => head.height >= 2))
      const reasons = () => Effect.map(victim.ledger.stats, (stats) => stats.reasons)

      // Submitted through the RPC path: typed errors.
      const junkSubmit = yield* Effect.either(victim.ledger.submit(new Uint8Array([1, 2, 3])))
      assert.strictEqual(Either.isLeft(junkSubmit) && junkSubmit.left.reason, "Malformed")
      const stranger = Either.getOrThrow(Transaction.sign({ _tag: "Accept", chain: genesis.params.chainId, from: Id.toBytes(outsider.id), nonce: 1, pending: new Uint8Array(32) }, outsider, { includePublicKey: false }))
      const unknown = yield* Effect.either(victim.ledger.submit(Either.getOrThrow(Transaction.encode(stranger))))
      assert.strictEqual(Either.isLeft(unknown) && unknown.left.reason, "UnknownKey")
      const sent = yield* transfer(victim.ledger, user, friend, 1n)
      yield* victim.ledger.submit(sent.bytes)
      yield* eventually("the transfer is included", Effect.map(victim.ledger.included(sent.id), Option.isSome))
      const replay = yield* Effect.either(victim.ledger.submit(sent.bytes))
      assert.strictEqual(Either.isLeft(replay) && replay.left.reason, "Replay")
      const wrongChain = Either.getOrThrow(Transaction.sign({ ...sent.tx.body, chain: "another-chain", nonce: 9 } as Transaction.Body, user))
      const otherChain = yield* Effect.either(victim.ledger.submit(Either.getOrThrow(Transaction.encode(wrongChain))))
      assert.isTrue(Either.isLeft(otherChain))

      // Over gossip: junk, a forged signature, a block from a non-authority, junk transactions.
      yield* Effect.ignore(gossip.publish(chainTopics.blocks, new Uint8Array(randomBytes(100))))
      const head = yield* victim.ledger.head
      const slot = Consensus.slotAt(genesis, Date.now())
      const producer = authorities.find((a) => a.id === Consensus.producerOf(genesis, slot).id)!
      const good = Either.getOrThrow(Block.make({ genesis, parent: head, slot, txs: [], producer }))
      const forged = { ...good, signature: good.signature.map((byte, index) => (index === 0 ? byte ^ 1 : byte)) }
      const parentObject = Option.getOrThrow(yield* victim.ledger.objectOf(head.id))
      yield* Effect.ignore(gossip.publish(chainTopics.blocks, Either.getOrThrow(encodeObject(forged, parentObject))))
      const header = { ...good.header, producer: Id.toBytes(outsider.id) }
      const intruder = { header, txs: [], signature: Account.sign(outsider, Block.signingMessage(Block.id(header))) }
      yield* Effect.ignore(gossip.publish(chainTopics.blocks, Either.getOrThrow(encodeObject(intruder, parentObject))))
      yield* Effect.ignore(gossip.publish(chainTopics.transactions, new Uint8Array(randomBytes(64))))
      yield* Effect.ignore(gossip.publish(chainTopics.heads, new Uint8Array([0xc1])))
      yield* eventually("every hostile gossip message is counted", Effect.map(reasons(), (r) =>
        (r["block/Malformed"] ?? 0) >= 1 && (r["block/BadSignature"] ?? 0) >= 1 && (r["block/WrongProducer"] ?? 0) >= 1 &&
        (r["transaction/Malformed"] ?? 0) >= 1 && (r["head/Malformed"] ?? 0) >= 1))

      // A peer serving an object that hashes right but is no block: catch-up fails with a typed reason.
      const hostileStore = Context.get(hostileSync, Store.Store)
      const junkObject = yield* hostileStore.put(Either.getOrThrow(Canonical.encode(["not a block", 1])))
      const junk = yield* Effect.either(victim.ledger.catchUp(hostile.id, junkObject))
      assert.strictEqual(Either.isLeft(junk) && junk.left.reason, "Malformed")
      // …one whose block is forged…
      const forgedObject = yield* hostileStore.put(Either.getOrThrow(encodeObject(forged, parentObject)))
      const forgedCatchUp = yield* Effect.either(victim.ledger.catchUp(hostile.id, forgedObject))
      assert.strictEqual(Either.isLeft(forgedCatchUp) && forgedCatchUp.left.reason, "BadSignature")
      // …and an object the peer does not hold.
      const missing = yield* Effect.either(victim.ledger.catchUp(hostile.id, Store.idOf(new Uint8Array([9]))))
      assert.strictEqual(Either.isLeft(missing) && missing.left.reason, "UnknownParent")
      const stats = yield* victim.ledger.stats
      assert.isTrue(stats.catchUpFailures >= 3)
      assert.isTrue(stats.blocksRejected >= 3)
      // The victim still follows the chain.
      const before = (yield* victim.ledger.head).height
      yield* eventually("the victim still imports blocks", Effect.map(victim.ledger.head, (h) => h.height > before))
    }), { timeout: 60_000 })
})
