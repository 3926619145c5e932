import { assert, describe, it } from "@effect/vitest"
import * as fc from "effect/FastCheck"
import * as Engine from "../src/internal/gossipEngine.js"
import { Kind, type Message, messageId } from "../src/internal/gossipMessage.js"
import { SeenCache } from "../src/internal/gossipSeen.js"
import * as Strategies from "../src/internal/gossipStrategies.js"
import * as Limits from "../src/Limits.js"
import * as Prng from "../src/internal/prng.js"

type Sent = { readonly from: number; readonly to: number; readonly message: Message<number, number, number> }

/** A handful of engines wired by a FIFO pump: no loss, one virtual ms per hop. */
const network = (strategy: Strategies.Strategy, size: number, config: Partial<Engine.Config> = {}, invalidFrom = -1) => {
  const queue: Array<Sent> = []
  const delivered: Array<Array<number>> = []
  const disconnects: Array<[number, number]> = []
  const engines = Array.from({ length: size }, (_, node) => {
    delivered.push([])
    return Strategies.make<number, number, number>(strategy, {
      self: node,
      sink: {
        send: (to, message) => queue.push({ from: node, to, message }),
        deliver: (message) => delivered[node]!.push(message.id),
        disconnect: (peer) => disconnects.push([node, peer])
      },
      prng: Prng.make(node + 1),
      validate: (_topic, message, from) => (from === invalidFrom || message.data < 0 ? Engine.Validation.Reject : Engine.Validation.Accept)
    }, Engine.configFromLimits(Limits.defaults, config))
  })
  let now = 0
  const links = new Set<string>()
  const connect = (a: number, b: number) => {
    links.add(`${a}-${b}`).add(`${b}-${a}`)
    engines[a]!.peerUp(now, b)
    engines[b]!.peerUp(now, a)
  }
  const disconnect = (a: number, b: number) => {
    links.delete(`${a}-${b}`)
    links.delete(`${b}-${a}`)
    engines[a]!.peerDown(now, b)
    engines[b]!.peerDown(now, a)
  }
  const pump = (ms: number) => {
    const end = now + ms
    while (now < end) {
      now += 1
      for (let i = queue.length; i > 0 && queue.length > 0; i--) {
        const { from, to, message } = queue.shift()!
        if (links.has(`${from}-${to}`)) engines[to]!.onMessage(now, from, message)
      }
      if (now % 100 === 0) for (const engine of engines) engine.onTick(now)
    }
  }
  for (const engine of engines) engine.subscribe(0, "t")
  return { engines, delivered, disconnects, connect, disconnect, pump, links, now: () => now }
}

const data = (id: number, payload = id): Message<number, number, number> => ({ kind: Kind.Data, topic: "t", id, data: payload, bytes: 100 })

describe("gossip message ids", () => {
  it("are the SHA-256 of topic and payload, and topic/payload boundaries matter", () => {
    const a = messageId("ab", new Uint8Array([99]))
    assert.strictEqual(a.length, 64)
    assert.strictEqual(a, messageId("ab", new Uint8Array([99])))
    assert.notStrictEqual(a, messageId("a", new Uint8Array([98, 99])))
  })
})

describe("SeenCache", () => {
  it("stays within its bound under a flood of distinct ids, counting early evictions", () => {
    const cache = new SeenCache<number, number>(1000, 60_000, 1000)
    for (let id = 0; id < 50_000; id++) if (!cache.has(id)) cache.add(id, id, id, 10, 0)
    assert.strictEqual(cache.size, 1000)
    assert.isAtMost(cache.capacity, 1024)
    assert.strictEqual(cache.evictedEarly, 49_000)
    assert.isTrue(cache.has(49_999))
    assert.isFalse(cache.has(48_999))
  })

  it("forgets by time and releases payloads after the payload window", () => {
    const cache = new SeenCache<number, string>(100, 1000, 100)
    cache.add(0, 1, "x", 10, 0)
    cache.expire(50)
    assert.strictEqual(cache.payload(1), "x")
    cache.expire(200)
    assert.strictEqual(cache.payload(1), undefined)
    assert.strictEqual(cache.payloadBytes, 0)
    assert.isTrue(cache.has(1))
    cache.expire(1001.5)
    assert.isFalse(cache.has(1))
    assert.strictEqual(cache.size, 0)
  })

  it("property: membership equals the last `entriesMax` distinct ids inserted", () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 200 }), { maxLength: 400 }), fc.integer({ min: 1, max: 50 }), (ids, max) => {
      const cache = new SeenCache<number, number>(max, 1e9, 1e9)
      const order: Array<number> = []
      for (const id of ids) {
        if (cache.has(id)) continue
        cache.add(0, id, id, 1, 0)
        order.push(id)
      }
      const kept = new Set(order.slice(-max))
      assert.strictEqual(cache.size, kept.size)
      for (const id of new Set(ids)) assert.strictEqual(cache.has(id), kept.has(id))
    }))
  })
})

for (const strategy of Strategies.all) {
  describe(`${strategy} engine`, () => {
    it("property: delivers each valid message once whatever peers repeat it", () => {
      fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 30 })), { maxLength: 200 }), (arrivals) => {
        const { engines, delivered } = network(strategy, 5)
        for (let peer = 1; peer < 5; peer++) {
          engines[0]!.peerUp(0, peer)
          engines[0]!.onMessage(0, peer, { kind: Kind.Subscribe, topics: ["t"], subscribe: true })
        }
        arrivals.forEach(([peer, id], i) => engines[0]!.onMessage(i, peer + 1, data(id)))
        assert.deepStrictEqual([...delivered[0]!].sort((a, b) => a - b), [...new Set(arrivals.map(([, id]) => id))].sort((a, b) => a - b))
      }))
    })

    it("keeps its seen-cache and memory bounded under a flood of distinct messages", () => {
      const { engines } = network(strategy, 2, { seenEntriesMax: 512 })
      engines[0]!.peerUp(0, 1)
      engines[0]!.onMessage(0, 1, { kind: Kind.Subscribe, topics: ["t"], subscribe: true })
      let peak = 0
      for (let id = 0; id < 20_000; id++) {
        engines[0]!.onMessage(id, 1, data(id))
        if (id % 100 === 0) engines[0]!.onTick(id)
        if (id > 2000) peak = Math.max(peak, engines[0]!.memoryBytes())
      }
      const sizes = engines[0]!.sizes()
      assert.isAtMost(sizes.seen, 512)
      assert.isAtMost(sizes.pendingIhave, Limits.defaults.gossipIhaveIdsMax)
      assert.isAtMost(peak, 512 * (Engine.seenEntryBytes + 100) * 2 + 64 * 1024)
    })

    it("does not grow memory when a peer flaps", () => {
      const { engines } = network(strategy, 2)
      const engine = engines[0]!
      let now = 0
      const cycle = () => {
        engine.peerUp(now, 1)
        engine.onMessage(now, 1, { kind: Kind.Subscribe, topics: ["t"], subscribe: true })
        engine.onMessage(now, 1, data(now))
        now += 100
        engine.peerDown(now, 1)
        engine.onTick(now)
      }
      for (let i = 0; i < 100; i++) cycle()
      const after100 = engine.memoryBytes()
      for (let i = 0; i < 5000; i++) cycle()
      assert.strictEqual(engine.sizes().peers, 0)
      // Seen ids are bounded by the window (2 min of 10 msg/s here); per-peer state is gone.
      assert.isAtMost(engine.memoryBytes(), after100 + 1200 * (Engine.seenEntryBytes + 100) + 4096)
    })
  })
}

describe("weft engine", () => {
  it("scores out a peer that sends invalid messages and asks to disconnect it; honest traffic still flows", () => {
    const { engines, delivered, disconnects, connect, pump } = network("weft", 3, {}, 2)
    connect(0, 1)
    connect(0, 2)
    pump(10)
    // Rejected messages graylist it at -50; what it sends while graylisted is ignored and still scored.
    for (let i = 0; i < 100; i++) engines[0]!.onMessage(10 + i * 0.1, 2, data(1000 + i, -1))
    assert.deepStrictEqual(disconnects, [[0, 2]])
    assert.strictEqual(engines[0]!.counters.invalid, 6)
    assert.isAtLeast(engines[0]!.counters.graylisted, 40)
    assert.isTrue(engines[0]!.counters.disconnects === 1)
    engines[1]!.publish(100, "t", 7, 7, 100)
    pump(10)
    assert.deepStrictEqual(delivered[0], [7])
    // A reconnect does not reset the score: the engine asks to disconnect again at once.
    engines[0]!.peerDown(200, 2)
    engines[0]!.peerUp(201, 2)
    assert.strictEqual(disconnects.length, 2)
  })

  it("bounds an IHAVE flood: at most gossipMissingEntriesMax ids are tracked, the rest counted", () => {
    const { engines, connect } = network("weft", 2, { missingEntriesMax: 100, ihaveIdsMax: 500 })
    connect(0, 1)
    const ids = Array.from({ length: 2000 }, (_, i) => i)
    engines[0]!.onMessage(1, 1, { kind: Kind.Ihave, topic: "t", ids })
    assert.strictEqual(engines[0]!.sizes().missing, 100)
    assert.strictEqual(engines[0]!.counters.ihaveIdsDropped, 1500)
    assert.strictEqual(engines[0]!.counters.missingDropped, 400)
  })

  it("fetches from its tree parent when every peer that announced a missing message has left", () => {
    const { connect, delivered, disconnect, engines, links, pump } = network("weft", 3)
    connect(0, 1)
    connect(0, 2)
    connect(1, 2)
    // Node 0 has the smallest id: it is the root, and 2's parent (one hop, against two through 1).
    pump(3000)
    // Everything between 0 and 2 is lost for a while (the engines do not notice): 2 misses the push and
    // the tree IHAVE, and hears of the message only from its lazy peer 1.
    links.delete("0-2")
    links.delete("2-0")
    engines[0]!.publish(3000, "t", 7, 7, 100)
    for (let waited = 0; waited < 2000 && engines[2]!.sizes().missing === 0; waited++) pump(1)
    assert.strictEqual(engines[2]!.sizes().missing, 1)
    // The only announcer leaves before 2 fetches; the link to the parent works again.
    disconnect(1, 2)
    links.add("0-2").add("2-0")
    pump(3000)
    assert.deepStrictEqual(delivered[2], [7])
    assert.strictEqual(engines[2]!.counters.missingGaveUp, 0)
  })

  it("repairs the tree when a link drops: later messages still reach everyone", () => {
    const { engines, delivered, connect, disconnect, pump } = network("weft", 6)
    for (let a = 0; a < 6; a++) for (let b = a + 1; b < 6; b++) connect(a, b)
    pump(500)
    engines[0]!.publish(500, "t", 1, 1, 100)
    pump(2000)
    for (let node = 1; node < 6; node++) assert.deepStrictEqual(delivered[node], [1], `node ${node}`)
    // Drop every tree edge of node 5: it must re-attach (GRAFT) or repair (IWANT) from announcements.
    for (let peer = 0; peer < 5; peer++) disconnect(5, peer)
    for (let peer = 0; peer < 4; peer++) connect(5, peer)
    pump(500)
    for (let id = 2; id < 12; id++) {
      engines[id % 5]!.publish(2000 + id * 300, "t", id, id, 100)
      pump(300)
    }
    pump(3000)
    const publisher = (id: number) => (id === 1 ? 0 : id % 5)
    for (let node = 0; node < 6; node++) {
      const expected = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11].filter((id) => publisher(id) !== node)
      assert.deepStrictEqual([...delivered[node]!].sort((a, b) => a - b), expected, `node ${node}`)
    }
  })
})

describe("configFromLimits", () => {
  it("takes every bound from Limits in milliseconds", () => {
    const config = Engine.configFromLimits(Limits.defaults)
    assert.strictEqual(config.seenWindowMs, 120_000)
    assert.strictEqual(config.payloadWindowMs, 10_000)
    assert.strictEqual(config.seenEntriesMax, Limits.defaults.gossipSeenCacheEntriesMax)
  })
})
