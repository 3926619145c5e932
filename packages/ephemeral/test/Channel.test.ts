import { assert, describe, it } from "@effect/vitest"
import { Entropy } from "@weft/core"
import { Effect, Either, Layer, Option } from "effect"
import * as Chain from "../src/Chain.js"
import * as Channel from "../src/Channel.js"
import * as MessageModule from "../src/Message.js"
import { bytesOf } from "./fixtures.js"

const window = 8
const text = (value: string) => new TextEncoder().encode(value)
const read = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : new TextDecoder().decode(bytes))

/** A chain where alice, bob and carol registered their keys; dave has none. */
const world = () => {
  const chain = Chain.makeMemory()
  const [alice, bob, carol, dave] = ["alice", "bob", "carol", "dave"].map((name) => Channel.generateParty(bytesOf(name, 32))) as [Channel.Party, Channel.Party, Channel.Party, Channel.Party]
  for (const party of [alice, bob, carol]) chain.register(Channel.latticeKeyOf(party))
  const layer = Layer.merge(Chain.layerMemory(chain), Entropy.layerSeeded("channel-test"))
  return { chain, alice, bob, carol, dave, layer }
}

const sealText = (session: Channel.Session, value: string) => Either.getOrThrow(session.seal(text(value)))

describe("Channel: secure channels over ephemeral messages", () => {
  it.effect("only the two parties recognise and decrypt; replies flow back; a third party with the chain sees nothing", () => {
    const { alice, bob, carol, layer } = world()
    return Effect.gen(function*() {
      const opened = yield* Channel.open(alice, bob.account, window)
      const bobInbox = new Channel.Inbox(bob, window, 16)
      const carolInbox = new Channel.Inbox(carol, window, 16)
      const atBob = yield* bobInbox.receive(opened.message)
      assert.isTrue(Option.isSome(atBob) && atBob.value._tag === "Opened" && atBob.value.session.peer === alice.account)
      assert.isTrue(Option.isNone(yield* carolInbox.receive(opened.message)))

      const hello = sealText(opened.session, "hello bob")
      const got = yield* bobInbox.receive(hello)
      assert.strictEqual(Option.isSome(got) && got.value._tag === "Text" ? read(got.value.text) : undefined, "hello bob")
      assert.isTrue(Option.isNone(yield* carolInbox.receive(hello)))

      const bobSession = bobInbox.session(alice.account)!
      const reply = sealText(bobSession, "hi alice")
      assert.isTrue(opened.session.recognises(reply.id))
      assert.strictEqual(read(opened.session.open(reply)), "hi alice")
      // Alice's own message is not one she expects (directions differ), and a replay is no longer expected.
      assert.isFalse(opened.session.recognises(hello.id))
      assert.isTrue(Option.isNone(yield* bobInbox.receive(hello)))
      assert.strictEqual(carolInbox.channels.length, 0)
    }).pipe(Effect.provide(layer))
  })

  it.effect("on the wire every channel message has one size class, and its ids look random", () => {
    const { alice, bob, layer } = world()
    return Effect.gen(function*() {
      const opened = yield* Channel.open(alice, bob.account, window)
      const data = Array.from({ length: 200 }, (_, index) => sealText(opened.session, index % 2 === 0 ? "" : "x".repeat(index * 10)))
      const all = [opened.message, ...data]
      assert.isTrue(all.every((message) => message.payload.length === Channel.sizeClassBytes))
      assert.isTrue(all.every((message) => message.id.length === MessageModule.idBytes))
      // Ids: all distinct, and their bytes spread over the whole range (a loose chi-square on 201 × 64 bytes).
      assert.strictEqual(new Set(all.map((message) => MessageModule.idKey(message.id))).size, all.length)
      const counts = new Array<number>(256).fill(0)
      for (const message of all) for (const byte of message.id) counts[byte]!++
      const expected = (all.length * 64) / 256
      const chiSquare = counts.reduce((sum, count) => sum + (count - expected) ** 2 / expected, 0)
      assert.isBelow(chiSquare, 400)
      // Consecutive ids share no visible structure (no counter shows through).
      const sharedPrefix = data.slice(1).filter((message, index) => message.id[0] === data[index]!.id[0] && message.id[1] === data[index]!.id[1])
      assert.isBelow(sharedPrefix.length, 3)
    }).pipe(Effect.provide(layer))
  })

  it.effect("origin is checked against the chain: an unknown sender or a forged signature is BadChannel", () => {
    const { alice, bob, carol, dave, layer } = world()
    return Effect.gen(function*() {
      // Dave has no keys on the chain: bob cannot verify him.
      const fromDave = yield* Channel.open(dave, bob.account, window)
      const refused = yield* Effect.either(Channel.accept(bob, fromDave.message, window))
      assert.strictEqual(refused._tag === "Left" ? refused.left.reason : "ok", "BadChannel")
      // Carol claims to be alice: her signature does not verify under alice's registered key.
      const impostor: Channel.Party = { ...carol, account: alice.account }
      const forged = yield* Channel.open(impostor, bob.account, window)
      const forgedResult = yield* Effect.either(Channel.accept(bob, forged.message, window))
      assert.strictEqual(forgedResult._tag === "Left" ? forgedResult.left.reason : "ok", "BadChannel")
      const inbox = new Channel.Inbox(bob, window, 4)
      assert.isTrue(Option.isNone(yield* inbox.receive(forged.message)))
      assert.strictEqual(inbox.badOpenings, 1)
      // No keys for the recipient: NoKey.
      const toDave = yield* Effect.either(Channel.open(alice, dave.account, window))
      assert.strictEqual(toDave._tag === "Left" ? toDave.left.reason : "ok", "NoKey")
    }).pipe(Effect.provide(layer))
  })

  it.effect("tampering, oversized text, and messages beyond the receive window", () => {
    const { alice, bob, layer } = world()
    return Effect.gen(function*() {
      const opened = yield* Channel.open(alice, bob.account, window)
      const bobSession = Option.getOrThrow(yield* Channel.accept(bob, opened.message, window))
      const tooLong = opened.session.seal(new Uint8Array(Channel.textBytesMax + 1))
      assert.strictEqual(Either.isLeft(tooLong) ? tooLong.left.reason : "ok", "TooLarge")
      const messages = Array.from({ length: window + 2 }, (_, index) => sealText(opened.session, `m${index}`))
      const tampered = { ...messages[0]!, payload: messages[0]!.payload.slice() }
      tampered.payload[100]! ^= 1
      assert.isUndefined(bobSession.open(tampered))
      // Counters 0 .. window-1 are expected; window and window+1 are not, until earlier ones arrive.
      assert.isFalse(bobSession.recognises(messages[window]!.id))
      // Out of order within the window is fine.
      assert.strictEqual(read(bobSession.open(messages[3]!)), "m3")
      assert.strictEqual(read(bobSession.open(messages[0]!)), "m0")
      assert.strictEqual(read(bobSession.open(messages[1]!)), "m1")
      assert.isTrue(bobSession.recognises(messages[window]!.id))
      assert.strictEqual(read(bobSession.open(messages[window]!)), `m${window}`)
      // Base 2 (3 and 8 arrived early): 2, 4, 5, 6, 7, 9 are expected.
      assert.strictEqual(bobSession.expectedId0s().length, window - 2)
      // A snapshot restores the same state (keys, counters, window).
      const restored = Channel.Session.restore(bobSession.snapshot(), window)
      assert.strictEqual(read(restored.open(messages[2]!)), "m2")
      assert.isUndefined(restored.open(messages[3]!))
    }).pipe(Effect.provide(layer))
  })

  it.effect("an inbox keeps at most channelsMax channels", () => {
    const { bob, chain, layer } = world()
    return Effect.gen(function*() {
      const inbox = new Channel.Inbox(bob, window, 2)
      for (let index = 0; index < 3; index++) {
        const sender = Channel.generateParty(bytesOf(`sender-${index}`, 32))
        chain.register(Channel.latticeKeyOf(sender))
        const opened = yield* Channel.open(sender, bob.account, window)
        assert.isTrue(Option.isSome(yield* inbox.receive(opened.message)))
      }
      assert.strictEqual(inbox.channels.length, 2)
      assert.strictEqual(inbox.forgotten, 1)
    }).pipe(Effect.provide(layer))
  })
})
