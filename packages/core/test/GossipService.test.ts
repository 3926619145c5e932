import { assert, describe, it } from "@effect/vitest"
import { Chunk, Context, Effect, Either, Layer, Option, Stream } from "effect"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Gossip from "../src/Gossip.js"
import * as Limits from "../src/Limits.js"
import * as Messages from "../src/Messages.js"
import * as Node from "../src/Node.js"
import * as TransportMemory from "../src/TransportMemory.js"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "weft-gossip-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

type Built = Context.Context<Node.Services>

/** `count` nodes on one memory network, each connected to the next (a line: A - B - C …). */
const line = (count: number) =>
  Effect.gen(function*() {
    const dir = yield* tempDir
    const network = yield* TransportMemory.makeNetwork()
    const psk = new Uint8Array(randomBytes(32))
    const nodes: Array<Built> = []
    for (let index = 0; index < count; index++) {
      nodes.push(yield* Layer.build(Node.layer({
        dataDir: Path.join(dir, `n${index}`),
        transport: TransportMemory.layer(network),
        network: { psk },
        control: false
      })))
    }
    for (let index = 1; index < count; index++) {
      const next = Context.get(nodes[index]!, Node.Node)
      const address = (yield* next.status).transports[0]!.address
      yield* Context.get(nodes[index - 1]!, Node.Node).connect(address)
    }
    return nodes.map((context) => ({
      context,
      id: Context.get(context, Node.Node).id,
      gossip: Context.get(context, Gossip.Gossip),
      messages: Context.get(context, Messages.Messages)
    }))
  })

/** Subscribes in the background; `received` fills as messages arrive. */
const listen = (gossip: Context.Tag.Service<Gossip.Gossip>, topic: string) =>
  Effect.gen(function*() {
    const received: Array<Gossip.Message> = []
    const stream = yield* gossip.subscribe(topic)
    yield* Effect.forkScoped(Stream.runForEach(stream, (message) => Effect.sync(() => void received.push(message))))
    return received
  })

const waitUntil = (done: () => boolean) =>
  Effect.gen(function*() {
    for (let round = 0; round < 100 && !done(); round++) yield* Effect.sleep("50 millis")
    return done()
  })

/**
 * Waits until every node heard its neighbours' subscriptions (a node relays only topics it knows its peers
 * want), so that a publish after this reaches the whole line.
 */
const subscriptionsSettled = (nodes: ReadonlyArray<{ readonly gossip: Context.Tag.Service<Gossip.Gossip> }>) =>
  Effect.gen(function*() {
    const neighbours = (index: number) => (index > 0 ? 1 : 0) + (index < nodes.length - 1 ? 1 : 0)
    for (let round = 0; round < 100; round++) {
      const stats = yield* Effect.forEach(nodes, (node) => node.gossip.stats)
      if (stats.every((s, index) => s.peers === neighbours(index) && s.received >= neighbours(index))) return true
      yield* Effect.sleep("50 millis")
    }
    return false
  })

describe("Gossip service", () => {
  it.scopedLive("a message published at one end of a line of nodes reaches every subscriber, once", () =>
    Effect.gen(function*() {
      const [a, b, c] = yield* line(3)
      const atA = yield* listen(a!.gossip, "news")
      const atB = yield* listen(b!.gossip, "news")
      const atC = yield* listen(c!.gossip, "news")
      const data = new TextEncoder().encode("hello, weft")
      assert.isTrue(yield* subscriptionsSettled([a!, b!, c!]), "subscriptions exchanged")
      yield* a!.gossip.publish("news", data)
      assert.isTrue(yield* waitUntil(() => atB.length > 0 && atC.length > 0), "B and C got it")
      yield* Effect.sleep("300 millis")
      for (const [name, got] of [["A", atA], ["B", atB], ["C", atC]] as const) {
        assert.strictEqual(got.length, 1, `${name} got the message exactly once`)
        assert.deepStrictEqual([...got[0]!.data], [...data])
        assert.strictEqual(got[0]!.id, atA[0]!.id, "one content id everywhere")
      }
      assert.strictEqual(atA[0]!.from, a!.id, "the publisher's own copy comes from itself")
      assert.strictEqual(atC[0]!.from, b!.id, "C got it through B")
      // Publishing the same bytes again is the same message: nobody gets it twice.
      assert.strictEqual(yield* a!.gossip.publish("news", data), atA[0]!.id)
      yield* Effect.sleep("300 millis")
      assert.deepStrictEqual([atA.length, atB.length, atC.length], [1, 1, 1])
    }))

  it.scopedLive("a validator's reject stops a message at that node and counts it against the sender", () =>
    Effect.gen(function*() {
      const [a, b, c] = yield* line(3)
      const atB = yield* listen(b!.gossip, "checked")
      const atC = yield* listen(c!.gossip, "checked")
      yield* listen(a!.gossip, "checked")
      yield* b!.gossip.validate("checked", (message) => message.data[0] === 1 ? "accept" : "reject")
      assert.isTrue(yield* subscriptionsSettled([a!, b!, c!]), "subscriptions exchanged")
      yield* a!.gossip.publish("checked", Uint8Array.of(1, 7))
      assert.isTrue(yield* waitUntil(() => atC.length > 0), "a valid one passes")
      yield* a!.gossip.publish("checked", Uint8Array.of(0, 7))
      yield* Effect.sleep("500 millis")
      assert.deepStrictEqual([atB.length, atC.length], [1, 1], "the invalid one went no further than B")
      assert.isAtLeast((yield* b!.gossip.stats).invalid, 1)
    }))

  it.scopedLive("hostile gossip bodies are refused at the edge by the schema, counted, and change nothing", () =>
    Effect.gen(function*() {
      const [a, b] = yield* line(2)
      const before = yield* b!.messages.stats
      const hostile: ReadonlyArray<unknown> = [
        { k: 1, t: "x", i: [new Uint8Array(31)] }, // an id that is not a SHA-256
        { k: 2, i: Array.from({ length: Limits.defaults.gossipIwantIdsMax + 1 }, () => new Uint8Array(32)) }, // too many ids
        { k: 0, t: "t".repeat(Limits.defaults.gossipTopicCharsMax + 1), d: Uint8Array.of(1) }, // topic too long
        { k: 0, t: "x", d: "not bytes" },
        { k: 7, t: "x", r: new Uint8Array(31), q: 1, d: 1, p: false }, // a tree root that is not a node id
        { k: 7, t: "x", r: new Uint8Array(32), q: -1, d: 1, p: false }, // a negative wave number
        { k: 7, t: "x", r: new Uint8Array(32), q: 1, d: 256, p: false }, // a distance beyond a byte
        { k: 9 },
        "junk"
      ]
      for (const body of hostile) yield* a!.messages.send(b!.id, Gossip.messageTag, body)
      let rejected = 0
      for (let round = 0; round < 100 && rejected < hostile.length; round++) {
        yield* Effect.sleep("20 millis")
        rejected = (yield* b!.messages.stats).bodiesRejected - before.bodiesRejected
      }
      assert.strictEqual(rejected, hostile.length)
      assert.strictEqual((yield* b!.gossip.stats).receivedData, 0)
    }))

  it.scopedLive("publish refuses a bad topic, an oversized payload, and says when nobody could be reached", () =>
    Effect.gen(function*() {
      const [alone] = yield* line(1)
      const gossip = alone!.gossip
      const reasons = yield* Effect.forEach([
        gossip.publish("", Uint8Array.of(1)),
        gossip.publish("t".repeat(Limits.defaults.gossipTopicCharsMax + 1), Uint8Array.of(1)),
        gossip.publish("big", new Uint8Array(Limits.defaults.gossipMessageBytesMax + 1)),
        gossip.publish("lonely", Uint8Array.of(1))
      ], (publish) => Effect.map(Effect.flip(publish), (error) => error.reason))
      assert.deepStrictEqual(reasons, ["BadTopic", "BadTopic", "TooLarge", "NoPeers"])
      const subscribed = yield* Effect.either(gossip.subscribe(""))
      assert.isTrue(Either.isLeft(subscribed) && subscribed.left.reason === "BadTopic")
    }))

  it.scopedLive("a local subscriber that stops reading loses its oldest messages, counted, within its bound", () =>
    Effect.gen(function*() {
      const [alone] = yield* line(1)
      const gossip = alone!.gossip
      const pull = yield* Stream.toPull(yield* gossip.subscribe("flood"))
      const bound = Limits.defaults.gossipSubscriberBufferMessages
      for (let n = 0; n < bound + 10; n++) yield* Effect.either(gossip.publish("flood", Uint8Array.of(n & 0xff, n >> 8)))
      const first = yield* pull
      assert.isAtMost(Chunk.size(first), bound)
      assert.strictEqual((yield* gossip.stats).subscriberDropped, 10)
      const head = Option.getOrThrow(Chunk.head(first))
      assert.deepStrictEqual([...head.data], [10, 0], "the oldest ten were the ones dropped")
    }))
})
