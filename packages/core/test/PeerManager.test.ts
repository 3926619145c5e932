import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Layer, Schema } from "effect"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Link } from "../src/Link.js"
import type * as Limits from "../src/Limits.js"
import * as Messages from "../src/Messages.js"
import * as Node from "../src/Node.js"
import * as PeerManager from "../src/PeerManager.js"
import * as TransportMemory from "../src/TransportMemory.js"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "weft-peers-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const interval = Duration.millis(50)

/** A network of nodes, each with a peer manager (passive unless its limits say otherwise). */
const network = Effect.gen(function*() {
  const dir = yield* tempDir
  const memory = yield* TransportMemory.makeNetwork()
  const psk = new Uint8Array(randomBytes(32))
  let count = 0
  const start = (options: { readonly seeds?: ReadonlyArray<string>; readonly limits?: Partial<Limits.Values> } = {}) =>
    Effect.gen(function*() {
      const node = Node.layer({
        dataDir: Path.join(dir, `n${count++}`),
        transport: TransportMemory.layer(memory),
        network: { psk },
        control: false,
        // Nodes only answer peer exchange unless a test gives them a low watermark to fill.
        limits: { dialBackoffMin: Duration.millis(100), peersLowWatermark: 0, ...options.limits }
      })
      const context = yield* Layer.build(PeerManager.layer({ seeds: options.seeds ?? [], interval }).pipe(Layer.provideMerge(node)))
      return {
        link: Context.get(context, Link),
        manager: Context.get(context, PeerManager.PeerManager),
        messages: Context.get(context, Messages.Messages)
      }
    })
  return { start }
})

const waitUntil = (done: Effect.Effect<boolean>, rounds = 200) =>
  Effect.gen(function*() {
    for (let round = 0; round < rounds; round++) {
      if (yield* done) return true
      yield* Effect.sleep("25 millis")
    }
    return false
  })

describe("PeerManager", () => {
  it.scopedLive("bootstraps from a seed and reaches its low watermark through peer exchange", () =>
    Effect.gen(function*() {
      const net = yield* network
      const seed = yield* net.start()
      const others = yield* Effect.forEach([1, 2, 3], () => net.start())
      // The others know the seed; the seed thereby knows them all.
      for (const other of others) yield* other.link.dial(seed.link.address)
      const newcomer = yield* net.start({ seeds: [seed.link.address], limits: { peersLowWatermark: 4 } })
      assert.isTrue(yield* waitUntil(Effect.map(newcomer.link.peers, (peers) => peers.length >= 4)), "four peers")
      const stats = yield* newcomer.manager.stats
      assert.isAtLeast(stats.learned, 3, "the other three addresses came by peer exchange")
      assert.strictEqual(stats.dialFailures, 0)
      // One session per peer, and no dial beyond the low mark: exactly the four it needed.
      const peers = yield* newcomer.link.peers
      assert.strictEqual(new Set(peers.map((p) => p.peer)).size, peers.length)
      assert.strictEqual(stats.dials, 4)
    }))

  it.scopedLive("closes sessions above its high watermark, and only those", () =>
    Effect.gen(function*() {
      const net = yield* network
      const hub = yield* net.start({ seeds: [], limits: { peersLowWatermark: 0, peersHighWatermark: 2 } })
      const spokes = yield* Effect.forEach([1, 2, 3, 4, 5], () => net.start())
      for (const spoke of spokes) yield* spoke.link.dial(hub.link.address)
      assert.isTrue(yield* waitUntil(Effect.map(hub.link.peers, (peers) => peers.length === 2)), "down to two")
      yield* Effect.sleep("300 millis")
      assert.strictEqual((yield* hub.link.peers).length, 2, "and it stays there")
      assert.strictEqual((yield* hub.manager.stats).trimmed, 3)
    }))

  it.scopedLive("a dead seed is retried with exponential backoff, never in a storm", () =>
    Effect.gen(function*() {
      const net = yield* network
      // Nobody listens at mem:999: every dial fails (after the link's handshake attempts).
      const lonely = yield* net.start({
        seeds: ["mem:999"],
        limits: {
          peersLowWatermark: 1,
          handshakeAttemptTimeout: Duration.millis(20),
          handshakeAttemptsMax: 1,
          dialBackoffMax: Duration.seconds(60)
        }
      })
      yield* Effect.sleep("1600 millis")
      const stats = yield* lonely.manager.stats
      // Waits of 100, 200, 400, 800 ms between attempts: at most 5 dials in 1.6 s, however often it ticks.
      assert.isAtLeast(stats.dials, 3)
      assert.isAtMost(stats.dials, 5)
      assert.strictEqual(stats.dialFailures, stats.dials - stats.dialing)
      const [entry] = yield* lonely.manager.book
      assert.deepStrictEqual([entry?.address, entry?.seed], ["mem:999", true])
    }))

  it.scopedLive("peer-exchange replies are bounded and checked: junk is refused, the book never outgrows its bound", () =>
    Effect.gen(function*() {
      const net = yield* network
      const bookMax = 8
      const node = yield* net.start({ seeds: [], limits: { peerBookEntriesMax: bookMax, peersLowWatermark: 0 } })
      const liar = yield* net.start()
      const tooMany = Array.from({ length: 33 }, (_, i) => `mem:${1000 + i}`)
      let round = 0
      // The liar answers exchanges with ever new addresses, then with too many, then with junk.
      yield* liar.messages.handle(PeerManager.exchangeTag, { body: Schema.Unknown }, () =>
        Effect.succeed(
          round++ < 6 ? Array.from({ length: 5 }, (_, i) => `mem:${round * 10 + i}`) : round % 2 === 0 ? tooMany : [42, "x".repeat(500)]
        ))
      yield* liar.link.dial(node.link.address)
      assert.isTrue(yield* waitUntil(Effect.map(node.manager.stats, (s) => s.exchanges >= 10)))
      const stats = yield* node.manager.stats
      assert.isAtMost(stats.book, bookMax)
      assert.isAtLeast(stats.forgotten, 1, "old addresses made room for new ones")
      assert.isAtLeast(stats.exchangesFailed, 2, "oversized and junk replies were refused")
    }))

  it.scopedLive("1,000+ simultaneous dials between 11 nodes, both ways, end in exactly one session per pair", () =>
    Effect.gen(function*() {
      const net = yield* network
      const nodes = yield* Effect.forEach(Array.from({ length: 11 }), () => net.start())
      const dials = nodes.flatMap((from, i) =>
        nodes.flatMap((to, j) => (i === j ? [] : Array.from({ length: 10 }, () => Effect.either(from.link.dial(to.link.address)))))
      )
      assert.isAtLeast(dials.length, 1000)
      const results = yield* Effect.all(dials, { concurrency: "unbounded" })
      assert.isTrue(results.every((result) => result._tag === "Right"), "every dial got the pair's session")
      for (const node of nodes) {
        const peers = yield* node.link.peers
        assert.strictEqual(peers.length, nodes.length - 1, "one session with each other node")
        assert.strictEqual(new Set(peers.map((p) => p.peer)).size, peers.length)
      }
    }), 60_000)
})
