import { Rpc, RpcGroup } from "@effect/rpc"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Either, Layer, Option, Schema } from "effect"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Penalties } from "../src/internal/storePenalties.js"
import type * as Limits from "../src/Limits.js"
import * as Node from "../src/Node.js"
import type { NodeId } from "../src/NodeId.js"
import * as NodeRpc from "../src/NodeRpc.js"
import * as Store from "../src/Store.js"
import * as StoreSync from "../src/StoreSync.js"
import * as TransportMemory from "../src/TransportMemory.js"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "weft-storesync-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

type Built = Context.Context<Node.Services>

/** Real nodes on one memory network; node 0 is connected to every other. */
const star = (limits: ReadonlyArray<Partial<Limits.Values>>) =>
  Effect.gen(function*() {
    const dir = yield* tempDir
    const network = yield* TransportMemory.makeNetwork()
    const psk = new Uint8Array(randomBytes(32))
    const nodes: Array<{ readonly context: Built; readonly id: NodeId }> = []
    for (const [index, overrides] of limits.entries()) {
      const context = yield* Layer.build(Node.layer({
        dataDir: Path.join(dir, `n${index}`),
        transport: TransportMemory.layer(network),
        limits: overrides,
        network: { psk },
        control: false
      }))
      nodes.push({ context, id: Context.get(context, Node.Node).id })
    }
    for (const other of nodes.slice(1)) {
      const address = (yield* Context.get(other.context, Node.Node).status).transports[0]!.address
      yield* Context.get(nodes[0]!.context, Node.Node).connect(address)
    }
    return nodes
  })

/** Runs a store and StoreSync on a built node. */
const withSync = (node: { readonly context: Built }) =>
  Layer.build(StoreSync.layer.pipe(Layer.provideMerge(Store.layerMemory))).pipe(
    Effect.provide(node.context),
    Effect.map((context) => ({ store: Context.get(context, Store.Store), sync: Context.get(context, StoreSync.StoreSync) }))
  )

/** Runs a served group (a hostile server) on a built node. */
const serveOn = <E>(node: { readonly context: Built }, served: Layer.Layer<never, E, NodeRpc.NodeRpc>) =>
  Layer.build(served).pipe(Effect.provide(node.context))

const object = (length: number, fill: number) => new Uint8Array(length).fill(fill)

const reasonOf = <A>(result: Either.Either<A, { readonly reason: string }>) => Either.isLeft(result) ? result.left.reason : "succeeded"

const hexes = (ids: ReadonlyArray<Store.Id>) => ids.map(Store.toHex).sort()

describe("StoreSync", () => {
  it.scopedLive("fetch brings the missing objects, verified; held ones are not asked for; big replies are split", () =>
    Effect.gen(function*() {
      const [a, b] = yield* star([{}, {}])
      const atA = yield* withSync(a!)
      const atB = yield* withSync(b!)
      // Three 40 KiB objects do not fit one 60 KiB reply: the asker asks again for the rest.
      const objects = [object(40_000, 1), object(40_000, 2), object(40_000, 3), object(10, 4), object(60 * 1024, 5)]
      const ids = yield* atB.store.putAll(objects)
      yield* atA.store.put(objects[3]!)
      const unknown = Store.idOf(object(1, 99))
      const result = yield* atA.sync.fetch(b!.id, [...ids, ids[0]!, unknown], { pin: true })
      assert.deepStrictEqual(hexes(result.fetched), hexes([ids[0]!, ids[1]!, ids[2]!, ids[4]!]))
      assert.deepStrictEqual(hexes(result.held), hexes([ids[3]!]))
      assert.deepStrictEqual(hexes(result.missing), hexes([unknown]))
      for (const [index, id] of ids.entries()) {
        assert.deepStrictEqual([...Option.getOrThrow(yield* atA.store.get(id))], [...objects[index]!])
      }
      assert.strictEqual(yield* atA.store.pinCount(ids[0]!), 1, "fetched with pin")
      const stats = yield* atA.sync.stats
      assert.isAtLeast(stats.wantsSent, 3, "the reply was split")
      assert.strictEqual(stats.objectsFetched, 4)
      assert.strictEqual((yield* atB.sync.stats).objectsServed, 4)
      assert.deepStrictEqual(yield* atA.sync.have(b!.id, [ids[0]!, unknown]), [true, false])
    }))

  it.scopedLive("ids per request are bounded: a fetch splits them, a larger inbound request is refused and counted", () =>
    Effect.gen(function*() {
      const [a, b] = yield* star([{ storeSyncIdsPerRequestMax: 4 }, { storeSyncIdsPerRequestMax: 4 }])
      const atA = yield* withSync(a!)
      const atB = yield* withSync(b!)
      const ids = yield* atB.store.putAll(Array.from({ length: 10 }, (_, index) => object(8, index)))
      const result = yield* atA.sync.fetch(b!.id, ids)
      assert.strictEqual(result.fetched.length, 10)
      assert.strictEqual((yield* atA.sync.stats).wantsSent, 3)
      assert.strictEqual((yield* atA.sync.have(b!.id, ids)).length, 10, "have splits too")
      const raw = yield* NodeRpc.client(StoreSync.Rpcs, b!.id).pipe(Effect.provide(a!.context))
      const refused = yield* Effect.either(raw.StoreWant({ ids: ids.slice(0, 5) }))
      assert.strictEqual(Either.isLeft(refused) && refused.left._tag === "StoreError" && refused.left.reason, "TooLarge")
      assert.strictEqual((yield* atB.sync.stats).requestsRefused, 1)
    }))

  it.scopedLive("a peer serving bytes that do not match is penalized per object, then banned both ways; honest peers are unaffected", () =>
    Effect.gen(function*() {
      const [a, liar, honest] = yield* star([{ storeSyncPenaltyMax: 3 }, {}, {}])
      const atA = yield* withSync(a!)
      const atHonest = yield* withSync(honest!)
      yield* serveOn(liar!, NodeRpc.serve(StoreSync.Rpcs, {
        StoreHave: ({ ids }) => Effect.succeed(ids.map(() => true)),
        StoreWant: ({ ids }) => Effect.succeed(ids.map(() => new Uint8Array(randomBytes(32))))
      }))
      const wanted = [object(3, 1), object(3, 2), object(3, 3), object(3, 4)].map(Store.idOf)
      const first = yield* atA.sync.fetch(liar!.id, wanted.slice(0, 2))
      assert.deepStrictEqual([first.fetched.length, first.missing.length], [0, 2])
      assert.strictEqual(yield* atA.sync.penalty(liar!.id), 2)
      assert.isFalse(yield* atA.store.has(wanted[0]!), "nothing a liar sent was stored")
      yield* atA.sync.fetch(liar!.id, wanted.slice(2))
      assert.strictEqual(yield* atA.sync.penalty(liar!.id), 3)
      assert.strictEqual(reasonOf(yield* Effect.either(atA.sync.fetch(liar!.id, wanted))), "PeerBanned")
      assert.strictEqual(reasonOf(yield* Effect.either(atA.sync.have(liar!.id, wanted))), "PeerBanned")
      const stats = yield* atA.sync.stats
      assert.strictEqual(stats.objectsMismatched, 4)
      assert.deepStrictEqual([stats.peersPenalized, stats.peersBanned], [1, 1])
      // The banned node gets no service here either.
      yield* atA.store.put(object(3, 1))
      const fromLiar = yield* NodeRpc.client(StoreSync.Rpcs, a!.id).pipe(Effect.provide(liar!.context))
      const refused = yield* Effect.either(fromLiar.StoreWant({ ids: [wanted[0]!] }))
      assert.strictEqual(Either.isLeft(refused) && refused.left._tag === "StoreError" && refused.left.reason, "PeerBanned")
      assert.strictEqual((yield* atA.sync.stats).requestsRefused, 1)
      // Another peer is still served and fetched from.
      const good = yield* atHonest.store.put(object(3, 7))
      assert.strictEqual((yield* atA.sync.fetch(honest!.id, [good])).fetched.length, 1)
      assert.strictEqual(yield* atA.sync.penalty(honest!.id), 0)
    }))

  it.scopedLive("a reply with more entries than ids, or one that does not decode, fails with PeerMismatch and is penalized", () =>
    Effect.gen(function*() {
      const [a, padder, garbler] = yield* star([{}, {}, {}])
      const atA = yield* withSync(a!)
      yield* serveOn(padder!, NodeRpc.serve(StoreSync.Rpcs, {
        StoreHave: ({ ids }) => Effect.succeed([...ids.map(() => true), true]),
        StoreWant: ({ ids }) => Effect.succeed([...ids.map(() => null), null])
      }))
      class Garbled extends RpcGroup.make(
        Rpc.make("StoreWant", { payload: { ids: Schema.Array(Schema.Uint8ArrayFromSelf) }, success: Schema.Array(Schema.String) })
      ) {}
      yield* serveOn(garbler!, NodeRpc.serve(Garbled, { StoreWant: () => Effect.succeed(["not an object"]) }))
      const id = Store.idOf(object(1, 1))
      assert.strictEqual(reasonOf(yield* Effect.either(atA.sync.fetch(padder!.id, [id]))), "PeerMismatch")
      assert.strictEqual(reasonOf(yield* Effect.either(atA.sync.have(padder!.id, [id]))), "PeerMismatch")
      assert.strictEqual(reasonOf(yield* Effect.either(atA.sync.fetch(garbler!.id, [id]))), "PeerMismatch")
      assert.strictEqual(yield* atA.sync.penalty(padder!.id), 2)
      assert.strictEqual(yield* atA.sync.penalty(garbler!.id), 1)
      assert.strictEqual((yield* atA.sync.stats).repliesMalformed, 3)
      assert.isFalse(yield* atA.store.has(id))
    }))

  it.scopedLive("Want requests in flight to one peer are bounded over all fetches", () =>
    Effect.gen(function*() {
      const [a, slow] = yield* star([{ storeSyncIdsPerRequestMax: 2, storeSyncWantsInFlightPerPeerMax: 2 }, {}])
      const atA = yield* withSync(a!)
      const objects = Array.from({ length: 16 }, (_, index) => object(4, index))
      const byHex = new Map(objects.map((bytes) => [Store.toHex(Store.idOf(bytes)), bytes]))
      let inFlight = 0
      let inFlightMax = 0
      yield* serveOn(slow!, NodeRpc.serve(StoreSync.Rpcs, {
        StoreHave: ({ ids }) => Effect.succeed(ids.map(() => true)),
        StoreWant: ({ ids }) =>
          Effect.gen(function*() {
            inFlightMax = Math.max(inFlightMax, ++inFlight)
            yield* Effect.sleep("30 millis")
            inFlight--
            return ids.map((id) => byHex.get(Store.toHex(id)) ?? null)
          })
      }))
      const ids = objects.map(Store.idOf)
      const [first, second] = yield* Effect.all([
        atA.sync.fetch(slow!.id, ids.slice(0, 8)),
        atA.sync.fetch(slow!.id, ids.slice(8))
      ], { concurrency: "unbounded" })
      assert.strictEqual(first!.fetched.length + second!.fetched.length, 16)
      assert.strictEqual(inFlightMax, 2, "never more than storeSyncWantsInFlightPerPeerMax, and it was reached")
    }))

  it.scoped("a StoreSync whose reply bound cannot hold an object does not start", () =>
    Effect.gen(function*() {
      const [a] = yield* star([{ storeObjectBytesMax: 1000, storeSyncReplyBytesMax: 999 }])
      const exit = yield* Effect.exit(withSync(a!))
      assert.isTrue(exit._tag === "Failure")
    }))
})

describe("StoreSync penalty table", () => {
  it("stays within its bound, forgets the least penalized first, and keeps bans while it can", () => {
    const table = new Penalties<string>(3, 2)
    table.add("banned-1", 5)
    table.add("banned-2", 2)
    table.add("mild", 1)
    assert.strictEqual(table.penalty("banned-1"), 2, "capped at the ban threshold")
    table.add("newcomer", 1)
    assert.strictEqual(table.size, 3)
    assert.strictEqual(table.penalty("mild"), 0, "the least penalized went")
    assert.isTrue(table.isBanned("banned-1") && table.isBanned("banned-2"))
    table.add("newcomer", 1)
    assert.strictEqual(table.banned, 3, "every entry banned")
    table.add("fresh", 1)
    assert.strictEqual(table.size, 3)
    assert.isFalse(table.isBanned("banned-1"), "only now the oldest ban goes")
    assert.isTrue(table.isBanned("banned-2") && table.isBanned("newcomer"))
    assert.strictEqual(table.forgotten, 2)
  })
})
