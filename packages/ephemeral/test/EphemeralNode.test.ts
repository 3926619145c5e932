import { assert, describe, it } from "@effect/vitest"
import { Entropy, Gossip, Node, NodeRpc, TransportMemory } from "@weft/core"
import { Chunk, Context, Duration, Effect, Either, Exit, Fiber, Layer, Option, Scope, Stream } from "effect"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Chain from "../src/Chain.js"
import * as Channel from "../src/Channel.js"
import * as EphemeralLimits from "../src/EphemeralLimits.js"
import * as EphemeralNode from "../src/EphemeralNode.js"
import * as MessageModule from "../src/Message.js"
import * as Pow from "../src/Pow.js"
import { bytesOf, cheapParams } from "./fixtures.js"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "weft-ephemeral-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const waitUntil = (done: () => Effect.Effect<boolean>) =>
  Effect.gen(function*() {
    for (let round = 0; round < 100; round++) {
      if (yield* done()) return true
      yield* Effect.sleep("50 millis")
    }
    return false
  })

type Built = Context.Context<Node.Services | EphemeralNode.EphemeralNode>

/** Nodes on one memory network, connected in a line, each running the service with `configs[i]`. */
const line = (chain: Chain.Memory, configs: ReadonlyArray<EphemeralNode.Config>, limits: Partial<EphemeralLimits.Values> = {}) =>
  Effect.gen(function*() {
    const dir = yield* tempDir
    const network = yield* TransportMemory.makeNetwork()
    const psk = new Uint8Array(randomBytes(32))
    const nodes: Array<Built> = []
    for (const [index, config] of configs.entries()) {
      const ephemeral = EphemeralNode.layer({ algorithms: [Pow.sha256(cheapParams)], ...config }).pipe(
        Layer.provide(Layer.merge(EphemeralLimits.layer({ chainRefreshInterval: Duration.millis(50), inboxIdsMax: 16, ...limits }), Chain.layerMemory(chain)))
      )
      nodes.push(yield* Layer.build(ephemeral.pipe(Layer.provideMerge(Node.layer({
        dataDir: Path.join(dir, `n${index}`),
        transport: TransportMemory.layer(network),
        network: { psk },
        control: false
      })))))
    }
    for (let index = 1; index < nodes.length; index++) {
      const address = (yield* Context.get(nodes[index]!, Node.Node).status).transports[0]!.address
      yield* Context.get(nodes[index - 1]!, Node.Node).connect(address)
    }
    // Both ends see each session, and gossip saw every neighbour subscribe, before the test starts.
    const neighbours = (index: number) => (index > 0 ? 1 : 0) + (index < nodes.length - 1 ? 1 : 0)
    yield* waitUntil(() =>
      Effect.map(
        Effect.forEach(nodes, (node) => Context.get(node, Gossip.Gossip).stats),
        (stats) => stats.every((s, index) => s.peers === neighbours(index) && s.received >= neighbours(index))
      ))
    return nodes
  })

const serviceOf = (context: Built) => Context.get(context, EphemeralNode.EphemeralNode)

const clientOf = (context: Built, peer?: Built) =>
  NodeRpc.client(EphemeralNode.Rpcs, peer === undefined ? undefined : Context.get(peer, Node.Node).id).pipe(Effect.provide(context))

const rejectionOf = (result: Either.Either<unknown, { readonly _tag: string }>) =>
  Either.isLeft(result) && result.left._tag === "EphemeralError" ? (result.left as unknown as { rejection?: string }).rejection : "ok"

describe("EphemeralNode", () => {
  it.scopedLive("serves light clients: info, send, lookup by ID0 prefix, typed refusals, lattice keys", () =>
    Effect.gen(function*() {
      const chain = Chain.makeMemory({ blocks: 2 })
      const bob = Channel.generateParty(bytesOf("bob", 32))
      chain.register(Channel.latticeKeyOf(bob))
      const [a, b] = yield* line(chain, [{}, {}])
      // B is a light client's node; it calls A remotely.
      const client = yield* clientOf(b!, a!)
      const info = yield* client.EphemeralInfo()
      assert.strictEqual(info.recentBlockHashes.length, 2)
      assert.deepStrictEqual(info.algorithms.map((algorithm) => [algorithm.id, algorithm.workBitsMin]), [[1, cheapParams.workBitsMin]])
      const progress: Array<Pow.Progress> = []
      const message = yield* EphemeralNode.build(info, { id: bytesOf("rpc-1", 64), payload: bytesOf("hi", 50), ttl: "10 minutes" }, {
        batchAttempts: 4,
        onProgress: (p) => void progress.push(p)
      })
      assert.isAbove(progress.length, 0)
      const sent = yield* client.EphemeralSend({ message })
      assert.strictEqual(sent.stored, "Stored")
      const found = yield* client.EphemeralLookup({ prefix: message.subarray(2, 5) })
      assert.deepStrictEqual(found.map((bytes) => [...bytes]), [[...message]])
      assert.strictEqual((yield* client.EphemeralLookup({ prefix: Uint8Array.of(message[2]! ^ 1) })).length, 0)

      const refusals = yield* Effect.forEach([
        message, // a duplicate
        message.subarray(0, 80), // truncated
        Uint8Array.from([...message, 0]) // trailing bytes
      ], (bytes) => Effect.either(client.EphemeralSend({ message: bytes })))
      assert.deepStrictEqual(refusals.map(rejectionOf), ["Duplicate", "Truncated", "TrailingBytes"])
      const far = yield* EphemeralNode.build(info, { id: bytesOf("far", 64), payload: new Uint8Array(1), ttl: "3 days" })
      assert.strictEqual(rejectionOf(yield* Effect.either(client.EphemeralSend({ message: far }))), "TtlTooFar")
      const stats = yield* serviceOf(a!).stats
      assert.strictEqual(stats.validation.rejected.Duplicate, 1)

      assert.isNotNull(yield* client.EphemeralLatticeKey({ account: bob.account }))
      assert.isNull(yield* client.EphemeralLatticeKey({ account: "00".repeat(32) }))
      // The message also reached B over gossip.
      assert.isTrue(yield* waitUntil(() => Effect.map(serviceOf(b!).lookup(new Uint8Array(0)), (all) => all.length === 1)))
    }))

  it.scopedLive("two light clients chat over a channel through the nodes' RPC; relay off forwards nothing", () =>
    Effect.gen(function*() {
      const chain = Chain.makeMemory({ blocks: 1 })
      const alice = Channel.generateParty(bytesOf("alice", 32))
      const bob = Channel.generateParty(bytesOf("bob", 32))
      chain.register(Channel.latticeKeyOf(alice))
      chain.register(Channel.latticeKeyOf(bob))
      // alice's node - relay node - bob's node - a node that does not relay - a last node.
      const [na, relayNode, nb, quiet, last] = yield* line(chain, [{}, {}, {}, { relay: false }, {}])
      const aliceClient = yield* clientOf(na!)
      const bobClient = yield* clientOf(nb!)
      const window = 8

      // Bob follows his inbox: the channel size class (openings) and, later, his channels' ids.
      const bobInbox = new Channel.Inbox(bob, window, 4)
      const received: Array<string> = []
      const follow = (ids: ReadonlyArray<Uint8Array>) =>
        bobClient.EphemeralInbox({ ids, sizeClass: Channel.sizeClassBytes }).pipe(
          Stream.mapEffect((bytes) =>
            Effect.gen(function*() {
              const decoded = Either.getOrThrow(MessageModule.decode(bytes))
              const result = yield* bobInbox.receive(decoded)
              if (Option.isSome(result)) received.push(result.value._tag === "Text" ? new TextDecoder().decode(result.value.text) : "opened")
            }).pipe(Effect.provide(Chain.layerMemory(chain)))),
          Stream.runDrain
        )
      const fiber = yield* Effect.fork(follow([]))
      yield* Effect.sleep("200 millis")

      const chainView = EphemeralNode.chainViewOf(aliceClient)
      const opened = yield* Channel.open(alice, bob.account, window).pipe(
        Effect.provideService(Chain.ChainView, chainView),
        Effect.provide(Entropy.layer)
      )
      const send = (draft: { readonly id: Uint8Array; readonly payload: Uint8Array }) =>
        Effect.gen(function*() {
          const info = yield* aliceClient.EphemeralInfo()
          const message = yield* EphemeralNode.build(info, { ...draft, ttl: "5 minutes" })
          return yield* aliceClient.EphemeralSend({ message })
        })
      yield* send(opened.message)
      yield* send(Either.getOrThrow(opened.session.seal(new TextEncoder().encode("hello bob"))))
      assert.isTrue(yield* waitUntil(() => Effect.succeed(received.length === 2)))
      assert.deepStrictEqual(received, ["opened", "hello bob"])

      // Bob replies; alice finds it by looking up the ID0 her session expects.
      const bobSession = bobInbox.session(alice.account)!
      const reply = Either.getOrThrow(bobSession.seal(new TextEncoder().encode("hi alice")))
      const bobInfo = yield* bobClient.EphemeralInfo()
      yield* bobClient.EphemeralSend({ message: yield* EphemeralNode.build(bobInfo, { ...reply, ttl: "5 minutes" }) })
      const expected = opened.session.expectedId0s()
      let text: string | undefined
      yield* waitUntil(() =>
        Effect.gen(function*() {
          for (const id0 of expected) {
            for (const bytes of yield* aliceClient.EphemeralLookup({ prefix: id0 })) {
              const opened_ = opened.session.open(Either.getOrThrow(MessageModule.decode(bytes)))
              if (opened_ !== undefined) text = new TextDecoder().decode(opened_)
            }
          }
          return text !== undefined
        }).pipe(Effect.orDie))
      assert.strictEqual(text, "hi alice")
      yield* Fiber.interrupt(fiber)

      // The non-relaying node stored all three; the node behind it got none of them.
      assert.isTrue(yield* waitUntil(() => Effect.map(serviceOf(quiet!).lookup(new Uint8Array(0)), (all) => all.length === 3)))
      assert.strictEqual((yield* serviceOf(last!).lookup(new Uint8Array(0))).length, 0)
      assert.strictEqual((yield* serviceOf(relayNode!).lookup(new Uint8Array(0))).length, 3)
      const stored = yield* bobClient.EphemeralInbox({ ids: [], sizeClass: Channel.sizeClassBytes }).pipe(Stream.take(3), Stream.runCollect)
      assert.strictEqual(Chunk.size(stored), 3)
    }))

  it.scopedLive("an inbox watching too many ids is refused with a typed error", () =>
    Effect.gen(function*() {
      const chain = Chain.makeMemory()
      const [a] = yield* line(chain, [{}])
      const client = yield* clientOf(a!)
      const ids = Array.from({ length: 17 }, () => new Uint8Array(32))
      const result = yield* Effect.either(client.EphemeralInbox({ ids }).pipe(Stream.runDrain))
      assert.strictEqual(Either.isLeft(result) && result.left._tag === "EphemeralError" ? result.left.reason : "ok", "TooLarge")
    }))

  it.scopedLive("inbox subscriptions past inboxSubscribersMax are refused with a typed error; a closed one frees its place", () =>
    Effect.gen(function*() {
      const chain = Chain.makeMemory()
      const [a] = yield* line(chain, [{}], { inboxSubscribersMax: 2 })
      const service = serviceOf(a!)
      const first = yield* Scope.make()
      yield* Scope.extend(service.subscribe, first)
      yield* service.subscribe
      const refused = yield* Effect.either(Effect.scoped(service.subscribe))
      assert.strictEqual(Either.isLeft(refused) ? refused.left.reason : "ok", "InboxesFull")
      yield* Scope.close(first, Exit.void)
      const again = yield* Effect.either(Effect.scoped(service.subscribe))
      assert.isTrue(Either.isRight(again))
    }))
})

describe("EphemeralNode.build", () => {
  const infoWith = (blocks: number) => new EphemeralNode.Info({
    nowSeconds: 1_700_000_000,
    ttlMaxSeconds: 3600,
    relay: true,
    store: true,
    blockDepth: 64,
    recentBlockHashes: Array.from({ length: blocks }, (_, i) => Uint8Array.of(i, i, i, i)),
    algorithms: [{ id: Pow.sha256Id, name: "sha256", proofBytes: 8, workBitsMin: 1, ttlFactor: 0, sizeFactor: 0 }]
  })
  const stamped = (blocks: number) =>
    Effect.map(
      EphemeralNode.build(infoWith(blocks), { id: new Uint8Array(64).fill(1), payload: bytesOf("hi", 16), ttl: "1 minute" }),
      (encoded) => Either.getOrThrow(MessageModule.decode(encoded)).blockHash[0]
    )

  it.effect("stamps the block stampLagBlocks behind the newest, or the oldest known on a young chain", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* stamped(10), EphemeralNode.stampLagBlocks)
      assert.strictEqual(yield* stamped(2), 1)
      assert.strictEqual(yield* stamped(1), 0)
      assert.strictEqual((yield* Effect.flip(stamped(0))).reason, "NoBlocks")
    }))
})
