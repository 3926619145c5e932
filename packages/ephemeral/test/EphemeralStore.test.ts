import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Layer, TestClock } from "effect"
import * as EphemeralLimits from "../src/EphemeralLimits.js"
import * as EphemeralStore from "../src/EphemeralStore.js"
import type { Message } from "../src/Message.js"
import { bytesOf, encoded } from "./fixtures.js"

const bounds: EphemeralStore.Bounds = { storeMessagesMax: 100, storeBytesMax: 64 * 1024, storeEntryOverheadBytes: 256, lookupResultsMax: 50 }

const message = (label: string, options: { readonly ttl?: number; readonly payloadBytes?: number; readonly id?: Uint8Array } = {}): Message => ({
  id: options.id ?? bytesOf(label, 64),
  payload: bytesOf(`${label}/p`, options.payloadBytes ?? 200),
  ttl: options.ttl ?? 1000,
  blockHash: Uint8Array.of(1, 2, 3, 4),
  algorithm: 1,
  proof: new Uint8Array(8)
})

describe("EphemeralStore", () => {
  it("a flood of valid-but-cheap messages fills the store and no further: count and bytes stay within bounds", () => {
    const store = new EphemeralStore.Store(bounds)
    const results = new Map<string, number>()
    for (let index = 0; index < 2000; index++) {
      // Each flood message carries the minimum work; later ones are no cheaper than earlier ones.
      const result = store.insert(encoded(message(`flood-${index}`, { payloadBytes: 100 + (index % 500) })), 4, 0)
      results.set(result, (results.get(result) ?? 0) + 1)
      const stats = store.stats()
      assert.isAtMost(stats.messages, bounds.storeMessagesMax)
      assert.isAtMost(stats.bytes, bounds.storeBytesMax)
    }
    const stats = store.stats()
    assert.isAbove(results.get("Stored") ?? 0, 100)
    assert.isAbove(stats.evicted + stats.refused, 0)
    assert.strictEqual(stats.stored - stats.evicted, stats.messages)
  })

  it("when full, the message with the least work per byte goes first; a newcomer ranking lowest is refused", () => {
    const store = new EphemeralStore.Store({ ...bounds, storeMessagesMax: 3 })
    // Same size: work per byte is decided by the bits.
    const a = message("a")
    const b = message("b")
    const c = message("c")
    assert.strictEqual(store.insert(encoded(a), 10, 0), "Stored")
    assert.strictEqual(store.insert(encoded(b), 6, 0), "Stored")
    assert.strictEqual(store.insert(encoded(c), 8, 0), "Stored")
    assert.strictEqual(store.insert(encoded(message("cheap")), 5, 0), "Refused")
    assert.strictEqual(store.insert(encoded(message("rich")), 12, 0), "Stored")
    assert.isUndefined(store.get(b.id, 0))
    assert.isDefined(store.get(a.id, 0))
    assert.isDefined(store.get(c.id, 0))
    // Per byte: the same 8 bits on a message four times larger rank below the 8 bits of `c`.
    assert.strictEqual(store.insert(encoded(message("large", { payloadBytes: 1000 })), 9, 0), "Refused")
    assert.strictEqual(store.insert(encoded(a), 10, 0), "Duplicate")
    assert.deepStrictEqual(store.stats(), { messages: 3, bytes: store.stats().bytes, stored: 4, evicted: 1, expired: 0, refused: 2, duplicates: 1 })
  })

  it("the byte bound evicts as many cheaper messages as a large newcomer needs, or none", () => {
    const store = new EphemeralStore.Store({ ...bounds, storeBytesMax: 4 * (200 + 76 + 8 + 256) })
    for (let index = 0; index < 4; index++) assert.strictEqual(store.insert(encoded(message(`s${index}`)), 5 + index, 0), "Stored")
    // Needs the room of about three small ones; richer per byte than the two cheapest only: refused, nothing evicted.
    assert.strictEqual(store.insert(encoded(message("big", { payloadBytes: 1000 })), 5 + 2.5, 0), "Refused")
    assert.strictEqual(store.stats().messages, 4)
    assert.strictEqual(store.insert(encoded(message("big2", { payloadBytes: 1000 })), 20, 0), "Stored")
    assert.isAtMost(store.stats().bytes, 4 * (200 + 76 + 8 + 256))
    assert.strictEqual(store.stats().evicted, 3)
    assert.strictEqual(store.insert(encoded(message("huge", { payloadBytes: 8192 })), 100, 0), "TooLarge")
  })

  it("lookups by ID0 prefix of any length, capped at lookupResultsMax", () => {
    const store = new EphemeralStore.Store(bounds)
    const ids = Array.from({ length: 80 }, (_, index) => {
      const id = bytesOf(`lookup-${index}`, 64)
      id[0] = 0xab
      id[1] = index < 40 ? 0xcd : 0xce
      return id
    })
    ids.forEach((id, index) => store.insert(encoded(message(`m${index}`, { id })), 8, 0))
    store.insert(encoded(message("elsewhere")), 8, 0)
    assert.strictEqual(store.lookup(Uint8Array.of(0xab, 0xcd), 0).length, 40)
    assert.strictEqual(store.lookup(Uint8Array.of(0xab), 0).length, 50)
    assert.strictEqual(store.lookup(new Uint8Array(0), 0).length, 50)
    const exact = store.lookup(ids[7]!.subarray(0, 32), 0)
    assert.strictEqual(exact.length, 1)
    assert.deepStrictEqual([...exact[0]!.id], [...ids[7]!])
    assert.strictEqual(store.lookup(ids[7]!.subarray(0, 5), 0).length, 1)
  })

  it.scoped("expiry: the sweep driven by the Clock removes messages at their TTL, reads never return them after", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(EphemeralStore.layer.pipe(Layer.provide(EphemeralLimits.layer({ sweepInterval: Duration.seconds(1) }))))
      const service = Context.get(context, EphemeralStore.EphemeralStore)
      const short = message("short", { ttl: 10 })
      const long = message("long", { ttl: 30 })
      assert.strictEqual(yield* service.insert(encoded(short), 8), "Stored")
      assert.strictEqual(yield* service.insert(encoded(long), 8), "Stored")
      assert.strictEqual(yield* service.insert(encoded(message("dead", { ttl: 0 })), 8), "Expired")
      yield* TestClock.adjust("9999 millis")
      assert.isDefined(yield* service.get(short.id))
      yield* TestClock.adjust("1 millis")
      // At its TTL exactly: gone for readers, whether or not the sweep ran yet.
      assert.isUndefined(yield* service.get(short.id))
      assert.strictEqual((yield* service.lookup(new Uint8Array(0))).length, 1)
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* service.stats).messages, 1)
      assert.strictEqual((yield* service.stats).expired, 1)
      yield* TestClock.adjust("20 seconds")
      const stats = yield* service.stats
      assert.strictEqual(stats.messages, 0)
      assert.strictEqual(stats.bytes, 0)
    }))
})
