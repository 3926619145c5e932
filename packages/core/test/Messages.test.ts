import { assert, describe, it } from "@effect/vitest"
import { Chunk, Deferred, Duration, Effect, Fiber, Mailbox, Schema, Stream, TestClock } from "effect"
import type { Scope } from "effect"
import * as Codec from "../src/Codec.js"
import * as Envelope from "../src/Envelope.js"
import { Link, receiveFrom } from "../src/Link.js"
import type { Session } from "../src/Link.js"
import * as Limits from "../src/Limits.js"
import * as Messages from "../src/Messages.js"
import * as NodeId from "../src/NodeId.js"
import { LinkError, MessageError } from "../src/WeftError.js"

// ---- a fake link network: N nodes over in-memory mailboxes, with seeded fault injection ----------

type Fault = "pass" | "drop" | "duplicate" | "hold"

interface FakeNetworkOptions {
  readonly seed?: number
  readonly lossRate?: number
  readonly duplicateRate?: number
  readonly reorderRate?: number
}

interface End {
  readonly session: Session
  readonly inbox: Mailbox.Mailbox<Uint8Array>
  readonly closedSignal: Deferred.Deferred<void>
  other: End | undefined
  held: Array<Uint8Array>
  open: boolean
}

/** mulberry32: a small seeded PRNG, so a faulty run replays from its seed. */
const seeded = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const makeFakeLinkNetwork = (count: number, options: FakeNetworkOptions = {}) =>
  Effect.gen(function*() {
    const random = seeded(options.seed ?? 1)
    const ids = Array.from({ length: count }, (_, index) => NodeId.fromBytes(new Uint8Array(32).fill(index + 1)))
    const addresses = ids.map((_, index) => `fake:${index}`)
    const sessionFeeds: Array<Mailbox.Mailbox<Session>> = []
    for (let index = 0; index < count; index++) sessionFeeds.push(yield* Mailbox.make<Session>())
    const pairs = new Map<string, readonly [End, End]>()
    let scripted: ((frame: Uint8Array) => Fault) | undefined
    let framesSent = 0

    const randomFault = (): Fault => {
      const roll = random()
      if (roll < (options.lossRate ?? 0)) return "drop"
      if (roll < (options.lossRate ?? 0) + (options.duplicateRate ?? 0)) return "duplicate"
      if (roll < (options.lossRate ?? 0) + (options.duplicateRate ?? 0) + (options.reorderRate ?? 0)) return "hold"
      return "pass"
    }

    const deliver = (to: End, frame: Uint8Array): void => {
      const fault = scripted?.(frame) ?? randomFault()
      if (fault === "drop") return
      if (fault === "hold") {
        to.held.push(frame)
        return
      }
      to.inbox.unsafeOffer(frame)
      if (fault === "duplicate") to.inbox.unsafeOffer(frame)
      // A held frame goes out after the next one: that is the reordering.
      for (const late of to.held.splice(0)) to.inbox.unsafeOffer(late)
    }

    const makeEnd = (peer: number, remote: number, initiator: boolean) =>
      Effect.gen(function*() {
        const inbox = yield* Mailbox.make<Uint8Array>()
        const closedSignal = yield* Deferred.make<void>()
        const end: End = { inbox, closedSignal, other: undefined, held: [], open: true, session: undefined as unknown as Session }
        const session: Session = {
          peer: ids[peer]!,
          remote: addresses[remote]!,
          initiator,
          frameBytesMax: Limits.defaults.frameBytesMax,
          mtuBytes: Limits.defaults.frameBytesMax,
          send: (frame) =>
            Effect.suspend(() => {
              if (!end.open || end.other === undefined) return Effect.fail(new LinkError({ reason: "Closed" }))
              framesSent++
              deliver(end.other, frame)
              return Effect.void
            }),
          frames: Mailbox.toStream(inbox),
          receive: receiveFrom(Mailbox.toStream(inbox)),
          closed: Deferred.await(closedSignal),
          close: Effect.sync(() => closeEnd(end))
        }
        ;(end as { session: Session }).session = session
        return end
      })

    const closeEnd = (end: End): void => {
      for (const side of [end, end.other]) {
        if (side === undefined || !side.open) continue
        side.open = false
        side.inbox.unsafeDone({ _tag: "Success", value: undefined } as never)
        Deferred.unsafeDone(side.closedSignal, Effect.void)
      }
      for (const [key, pair] of pairs) if (pair[0] === end || pair[1] === end) pairs.delete(key)
    }

    const pairKey = (a: number, b: number) => (a < b ? `${a}-${b}` : `${b}-${a}`)

    const dial = (from: number, address: string): Effect.Effect<Session, LinkError> =>
      Effect.gen(function*() {
        const to = addresses.indexOf(address)
        if (to < 0) return yield* Effect.fail(new LinkError({ reason: "Timeout", detail: address }))
        if (to === from) return yield* Effect.fail(new LinkError({ reason: "SelfDial" }))
        const existing = pairs.get(pairKey(from, to))
        if (existing !== undefined) return existing[0].session.peer === ids[to] ? existing[0].session : existing[1].session
        const mine = yield* makeEnd(to, to, true)
        const theirs = yield* makeEnd(from, from, false)
        mine.other = theirs
        theirs.other = mine
        pairs.set(pairKey(from, to), [mine, theirs])
        sessionFeeds[from]!.unsafeOffer(mine.session)
        sessionFeeds[to]!.unsafeOffer(theirs.session)
        return mine.session
      })

    const link = (index: number): Link["Type"] => ({
      local: ids[index]!,
      address: addresses[index]!,
      dial: (address) => dial(index, address),
      sessions: Mailbox.toStream(sessionFeeds[index]!),
      peers: Effect.succeed([]),
      stats: Effect.succeed({
        sessionsOpened: 0, sessionsClosed: 0, handshakesFailed: 0, cellsRejected: 0, framesSent: 0,
        framesReceived: 0, framesDroppedInboxFull: 0, reassembliesDropped: 0
      })
    })

    return {
      ids,
      addresses,
      link,
      /** A session from node `from` to node `to`, for sending raw (hostile) frames. */
      rawSession: (from: number, to: number) => dial(from, addresses[to]!),
      /** Closes the session between two nodes, as a lost connection would. */
      disconnect: (a: number, b: number) =>
        Effect.sync(() => {
          const pair = pairs.get(pairKey(a, b))
          if (pair !== undefined) closeEnd(pair[0])
        }),
      /** Scripts the fate of each frame from now on (undefined: back to the seeded faults). */
      script: (fault: ((frame: Uint8Array) => Fault) | undefined) =>
        Effect.sync(() => {
          scripted = fault
        }),
      /** Delivers every frame still held for reordering. */
      flush: Effect.sync(() => {
        for (const pair of pairs.values()) {
          for (const end of pair) for (const late of end.held.splice(0)) end.inbox.unsafeOffer(late)
        }
      }),
      framesSent: () => framesSent
    }
  })

type Network = Effect.Effect.Success<ReturnType<typeof makeFakeLinkNetwork>>
type Service = Messages.Messages["Type"]

const messagesFor = (network: Network, index: number, limits: Partial<Limits.Values> = {}) =>
  Messages.make.pipe(
    Effect.provideService(Link, network.link(index)),
    Effect.provideService(Limits.Limits, { ...Limits.defaults, ...limits })
  )

/** Lets other fibers run until `check` holds (no clock involved). */
const eventually = <E>(check: Effect.Effect<boolean, E>, what = "condition"): Effect.Effect<void, E> =>
  Effect.gen(function*() {
    for (let round = 0; round < 2000; round++) {
      if (yield* check) return
      yield* Effect.yieldNow()
    }
    return yield* Effect.dieMessage(`${what} never held`)
  })

/** N nodes, node 0 connected to every other one (and each connection adopted on both sides). */
const setup = (
  count: number,
  options: FakeNetworkOptions & { readonly limits?: Partial<Limits.Values> } = {}
): Effect.Effect<{ network: Network; nodes: Array<Service> }, never, Scope.Scope> =>
  Effect.gen(function*() {
    const network = yield* makeFakeLinkNetwork(count, options)
    const nodes: Array<Service> = []
    for (let index = 0; index < count; index++) nodes.push(yield* messagesFor(network, index, options.limits))
    for (let index = 1; index < count; index++) {
      const peer = yield* Effect.orDie(nodes[0]!.connect(network.addresses[index]!))
      assert.strictEqual(peer, network.ids[index])
      yield* eventually(Effect.map(nodes[index]!.peers, (peers) => peers.includes(network.ids[0]!)), "adoption")
    }
    return { network, nodes }
  })

const reasonOf = <A, R>(effect: Effect.Effect<A, MessageError | { readonly reason: string }, R>) =>
  Effect.map(Effect.flip(effect), (error) => error.reason)

/** A raw envelope from a hostile or scripted peer. */
const raw = (fields: Partial<Envelope.Envelope> & Pick<Envelope.Envelope, "kind" | "seq">): Uint8Array =>
  Envelope.encode({ stream: 0, tag: "", corr: undefined, to: undefined, body: null, ...fields })

const Text = Schema.Struct({ text: Schema.String })

/** Collects the bodies a handler sees, in order. */
const collector = () => {
  const seen: Array<unknown> = []
  return { seen, handler: (message: Messages.Incoming<unknown>) => Effect.sync(() => void seen.push(message.body)) }
}

/** A channel server answering every body with `{ echo: body }`. */
const echoServer = (node: Service) =>
  node.serve("echo", (channel) =>
    channel.receive.pipe(
      Stream.runForEach((body) => channel.send({ echo: body })),
      Effect.ignore
    ))

// ---- tests -------------------------------------------------------------------------------------

describe("Messages", () => {
  describe("default handlers", () => {
    it.scoped("delivers sends by tag and answers calls, remote and local", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2)
        const [a, b] = [nodes[0]!, nodes[1]!]
        const seen: Array<Messages.Incoming<{ readonly text: string }>> = []
        yield* b.handle("echo", { body: Text, reply: Schema.String }, (message) =>
          Effect.sync(() => {
            seen.push(message)
            return message.body.text.toUpperCase()
          }))
        yield* a.send(network.ids[1]!, "echo", { text: "one" })
        yield* eventually(Effect.sync(() => seen.length === 1))
        assert.strictEqual(seen[0]!.peer, network.ids[0])
        assert.strictEqual(seen[0]!.tag, "echo")
        assert.deepStrictEqual(seen[0]!.body, { text: "one" })
        assert.strictEqual(seen[0]!.seq, 1)
        assert.strictEqual(yield* a.call(network.ids[1]!, "echo", { text: "two" }), "TWO")
        assert.strictEqual(seen[1]!.seq, 2)
        // the local node through the same codec path
        assert.strictEqual(yield* b.call(network.ids[1]!, "echo", { text: "self" }), "SELF")
        assert.strictEqual(seen[2]!.peer, network.ids[1])
        const stats = yield* b.stats
        assert.strictEqual(stats.envelopesReceived, 4) // a's send and call, the local call and its reply
        assert.strictEqual((yield* a.stats).callsInFlight, 0)
      }))

    it.scoped("encodes replies with the reply schema and preserves handler failures", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2)
        const [a, b] = [nodes[0]!, nodes[1]!]
        yield* b.handle("count", { body: Schema.Number, reply: Schema.NumberFromString }, (message) => Effect.succeed(message.body + 1))
        yield* b.handle("refuse", { body: Schema.Unknown }, () => Effect.fail(new MessageError({ reason: "Remote", detail: "nope" })))
        yield* b.handle("wrongReply", { body: Schema.Unknown, reply: Schema.Number }, () => Effect.succeed("x" as unknown as number))
        assert.strictEqual(yield* a.call(network.ids[1]!, "count", 41), "42")
        const refused = yield* Effect.flip(a.call(network.ids[1]!, "refuse", null))
        assert.strictEqual(refused.reason, "Remote")
        assert.strictEqual(refused.detail, "nope")
        assert.strictEqual(yield* reasonOf(a.call(network.ids[1]!, "wrongReply", null)), "Schema")
      }))

    it.scoped("rejects a body failing the schema: counted, and a call gets Schema", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2)
        const [a, b] = [nodes[0]!, nodes[1]!]
        const { handler, seen } = collector()
        yield* b.handle("text", { body: Text }, handler)
        yield* a.send(network.ids[1]!, "text", { text: 5 })
        assert.strictEqual(yield* reasonOf(a.call(network.ids[1]!, "text", "not an object")), "Schema")
        assert.strictEqual((yield* b.stats).bodiesRejected, 2)
        assert.strictEqual(seen.length, 0)
      }))

    it.scoped("survives a handler defect: error reply Remote, counted, layer still works", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2)
        const [a, b] = [nodes[0]!, nodes[1]!]
        yield* b.handle("boom", { body: Schema.Unknown }, () => Effect.die(new Error("handler bug")))
        yield* b.handle("ok", { body: Schema.Unknown }, () => Effect.succeed("fine"))
        const error = yield* Effect.flip(a.call(network.ids[1]!, "boom", null))
        assert.strictEqual(error.reason, "Remote")
        yield* a.send(network.ids[1]!, "boom", null)
        yield* eventually(Effect.map(b.stats, (stats) => stats.handlerDefects === 2))
        assert.strictEqual(yield* a.call(network.ids[1]!, "ok", null), "fine")
      }))

    it.scoped("counts an unknown tag; a call to it gets NoHandler", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2)
        const [a, b] = [nodes[0]!, nodes[1]!]
        yield* a.send(network.ids[1]!, "nobody", 1)
        assert.strictEqual(yield* reasonOf(a.call(network.ids[1]!, "nobody", 1)), "NoHandler")
        const stats = yield* b.stats
        assert.strictEqual(stats.unknownTag, 2)
        assert.strictEqual(stats.eventTags, 0) // inbound traffic never creates a tag
      }))

    it.scoped("fails at the sender: TooLarge, Unreachable, over-long tag", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2, { limits: { envelopeBytesMax: 256 } })
        const a = nodes[0]!
        assert.strictEqual(yield* reasonOf(a.send(network.ids[1]!, "t", new Uint8Array(300))), "TooLarge")
        assert.strictEqual(yield* reasonOf(a.send(network.ids[1]!, "x".repeat(300), null)), "TooLarge")
        const stranger = NodeId.fromBytes(new Uint8Array(32).fill(99))
        assert.strictEqual(yield* reasonOf(a.send(stranger, "t", null)), "Unreachable")
        assert.strictEqual(yield* reasonOf(a.call(stranger, "t", null)), "Unreachable")
        assert.strictEqual(yield* reasonOf(a.connect("fake:404")), "Unreachable")
        // a TooLarge send spent no sequence number: the next message is not held behind a gap
        const { handler, seen } = collector()
        yield* nodes[1]!.handle("t", { body: Schema.Unknown }, handler)
        yield* a.send(network.ids[1]!, "t", "small")
        yield* eventually(Effect.sync(() => seen.length === 1))
        assert.strictEqual((yield* nodes[1]!.stats).reorderHeld, 0)
      }))
  })

  describe("calls", () => {
    it.scoped("streams several replies with callStream", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2)
        const [a, b] = [nodes[0]!, nodes[1]!]
        yield* b.handleStream("range", { body: Schema.Number, reply: Schema.Number }, (message) => Stream.range(1, message.body))
        const replies = yield* Stream.runCollect(a.callStream(network.ids[1]!, "range", 5))
        assert.deepStrictEqual(Chunk.toReadonlyArray(replies), [1, 2, 3, 4, 5])
        // a plain call to a streaming handler takes its first reply; a callStream to a plain one gets one
        assert.strictEqual(yield* a.call(network.ids[1]!, "range", 3), 1)
        yield* b.handle("single", { body: Schema.Unknown }, () => Effect.succeed("only"))
        assert.deepStrictEqual(Chunk.toReadonlyArray(yield* Stream.runCollect(a.callStream(network.ids[1]!, "single", null))), ["only"])
        // locally too
        assert.deepStrictEqual(Chunk.toReadonlyArray(yield* Stream.runCollect(b.callStream(network.ids[1]!, "range", 2))), [1, 2])
        assert.strictEqual((yield* a.stats).callsInFlight, 0)
      }))

    it.scoped("fails a stream of replies with the handler's error and on idle timeout", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2)
        const [a, b] = [nodes[0]!, nodes[1]!]
        yield* b.handleStream("broken", { body: Schema.Unknown }, () =>
          Stream.concat(Stream.make(1), Stream.fail(new MessageError({ reason: "Remote", detail: "mid-stream" }))))
        yield* b.handleStream("slow", { body: Schema.Unknown }, () => Stream.concat(Stream.make(1), Stream.never))
        const broken = yield* Effect.flip(Stream.runCollect(a.callStream(network.ids[1]!, "broken", null)))
        assert.strictEqual(broken.detail, "mid-stream")
        const slow = yield* Effect.fork(Stream.runCollect(a.callStream(network.ids[1]!, "slow", null, { timeout: "1 second" })))
        yield* TestClock.adjust("2 seconds")
        assert.strictEqual((yield* Effect.flip(Fiber.join(slow))).reason, "Timeout")
        assert.strictEqual((yield* a.stats).callsInFlight, 0)
      }))

    it.scoped("times out a call (TestClock) and leaves no pending entry", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2)
        const [a, b] = [nodes[0]!, nodes[1]!]
        yield* b.handle("never", { body: Schema.Unknown }, () => Effect.never)
        const call = yield* Effect.fork(a.call(network.ids[1]!, "never", null))
        yield* eventually(Effect.map(a.stats, (stats) => stats.callsInFlight === 1))
        yield* TestClock.adjust(Limits.defaults.callTimeout)
        assert.strictEqual((yield* Effect.flip(Fiber.join(call))).reason, "Timeout")
        assert.strictEqual((yield* a.stats).callsInFlight, 0)
        const short = yield* Effect.fork(a.call(network.ids[1]!, "never", null, { timeout: "5 millis" }))
        yield* TestClock.adjust("5 millis")
        assert.strictEqual((yield* Effect.flip(Fiber.join(short))).reason, "Timeout")
        assert.strictEqual((yield* a.stats).callsInFlight, 0)
      }))

    it.scoped("many concurrent calls, asks and reply streams with different timeouts each fail at their own deadline (TestClock)", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2)
        const [a, b] = [nodes[0]!, nodes[1]!]
        const peer = network.ids[1]!
        yield* b.handle("never", { body: Schema.Unknown }, () => Effect.never)
        yield* b.handleStream("slow", { body: Schema.Unknown }, () => Stream.concat(Stream.make(1), Stream.never))
        yield* b.attach("silent", () => Effect.void)
        // Seconds, in an order that keeps setting deadlines earlier than the one being slept on; some repeat.
        const timeouts = [30, 7, 19, 3, 25, 1, 12, 5, 28, 2, 16, 9, 22, 4, 11, 6, 14, 8, 20, 10, 3, 13, 1, 26, 17, 7]
        const requests = timeouts.map((seconds, index) => {
          const options = { timeout: Duration.seconds(seconds) }
          switch (index % 3) {
            case 0:
              return a.call(peer, "never", index, options)
            case 1:
              return a.ask(peer, "silent", index, options)
            default:
              return Stream.runDrain(a.callStream(peer, "slow", index, options))
          }
        })
        const fibers = yield* Effect.forEach(requests, (request) => Effect.fork(Effect.flip(request)))
        yield* eventually(Effect.map(a.stats, (stats) => stats.callsInFlight === timeouts.length), "all in flight")
        const done = () => fibers.map((fiber) => fiber.unsafePoll() !== null)
        for (let second = 1; second <= 30; second++) {
          yield* TestClock.adjust("1 second")
          const expected = timeouts.map((timeout) => timeout <= second)
          yield* eventually(Effect.sync(() => done().filter(Boolean).length === expected.filter(Boolean).length), `the calls due at ${second} s`)
          assert.deepStrictEqual(done(), expected, `after ${second} s`)
        }
        for (const fiber of fibers) assert.strictEqual((yield* Fiber.join(fiber)).reason, "Timeout")
        assert.strictEqual((yield* a.stats).callsInFlight, 0)
      }))

    it.scoped("refuses calls beyond callsInFlightMax with CallsFull", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2, { limits: { callsInFlightMax: 2 } })
        const [a, b] = [nodes[0]!, nodes[1]!]
        yield* b.handle("never", { body: Schema.Unknown }, () => Effect.never)
        const first = yield* Effect.fork(a.call(network.ids[1]!, "never", 1))
        const second = yield* Effect.fork(a.call(network.ids[1]!, "never", 2))
        yield* eventually(Effect.map(a.stats, (stats) => stats.callsInFlight === 2))
        assert.strictEqual(yield* reasonOf(a.call(network.ids[1]!, "never", 3)), "CallsFull")
        assert.strictEqual(yield* reasonOf(a.ask(network.ids[1]!, "actor", 3)), "CallsFull")
        yield* Fiber.interrupt(first)
        yield* Fiber.interrupt(second)
        assert.strictEqual((yield* a.stats).callsInFlight, 0)
      }))

    it.scoped("counts and ignores a reply to a correlation id never issued, or from the wrong peer", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(3)
        const [a, b] = [nodes[0]!, nodes[1]!]
        yield* b.handle("never", { body: Schema.Unknown }, () => Effect.never)
        const call = yield* Effect.fork(a.call(network.ids[1]!, "never", null))
        yield* eventually(Effect.map(a.stats, (stats) => stats.callsInFlight === 1))
        // node 2 guesses correlation ids 1..3 (node 0's call is one of them) and answers them
        const hostile = yield* network.rawSession(2, 0)
        for (let corr = 1; corr <= 3; corr++) {
          yield* Effect.orDie(hostile.send(raw({ kind: Envelope.Kind.reply, seq: corr - 1, corr, body: "forged" })))
        }
        yield* eventually(Effect.map(a.stats, (stats) => stats.unknownCorrelation === 3))
        assert.strictEqual((yield* a.stats).callsInFlight, 1)
        yield* Fiber.interrupt(call)
      }))
  })

  describe("event channels", () => {
    it.scoped("pushes every message of a tag to a subscriber", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2)
        const [a, b] = [nodes[0]!, nodes[1]!]
        const events = yield* Effect.fork(Stream.runCollect(Stream.take(b.events("news"), 3)))
        yield* eventually(Effect.map(b.stats, (stats) => stats.eventSubscribers === 1))
        for (const body of ["x", "y", "z"]) yield* a.send(network.ids[1]!, "news", body)
        const got = Chunk.toReadonlyArray(yield* Fiber.join(events))
        assert.deepStrictEqual(got.map((message) => [message.body, message.seq, message.peer]), [
          ["x", 1, network.ids[0]],
          ["y", 2, network.ids[0]],
          ["z", 3, network.ids[0]]
        ])
        // the log outlives its subscriber: a later `since` pull replays it
        yield* eventually(Effect.map(b.stats, (stats) => stats.eventSubscribers === 0))
        const replay = yield* Stream.runCollect(Stream.take(b.events("news", { since: 1 }), 2))
        assert.deepStrictEqual(Chunk.toReadonlyArray(replay).map((message) => message.seq), [2, 3])
      }))

    it.scoped("since: replays then goes live with no gap and no duplicate", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2)
        const [a, b] = [nodes[0]!, nodes[1]!]
        const { handler } = collector()
        yield* b.handle("feed", { body: Schema.Unknown }, handler) // creates the log
        for (let index = 1; index <= 5; index++) yield* a.send(network.ids[1]!, "feed", index)
        yield* eventually(Effect.map(b.stats, (stats) => stats.envelopesReceived === 5))
        // live traffic keeps arriving while the subscriber starts
        const sender = yield* Effect.fork(Effect.forEach([6, 7, 8, 9, 10], (index) =>
          Effect.zipRight(a.send(network.ids[1]!, "feed", index), Effect.yieldNow())))
        const pulled = yield* Stream.runCollect(Stream.take(b.events("feed", { since: 2 }), 8))
        yield* Fiber.join(sender)
        assert.deepStrictEqual(Chunk.toReadonlyArray(pulled).map((message) => message.seq), [3, 4, 5, 6, 7, 8, 9, 10])
        assert.deepStrictEqual(Chunk.toReadonlyArray(pulled).map((message) => message.body), [3, 4, 5, 6, 7, 8, 9, 10])
      }))

    it.scoped("since older than the retained window starts at the oldest retained message", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2, { limits: { eventRetainedMessages: 3 } })
        const [a, b] = [nodes[0]!, nodes[1]!]
        yield* b.handle("feed", { body: Schema.Unknown }, () => Effect.void)
        for (let index = 1; index <= 6; index++) yield* a.send(network.ids[1]!, "feed", index)
        yield* eventually(Effect.map(b.stats, (stats) => stats.envelopesReceived === 6))
        const pulled = yield* Stream.runCollect(Stream.take(b.events("feed", { since: 0 }), 3))
        assert.deepStrictEqual(Chunk.toReadonlyArray(pulled).map((message) => message.seq), [4, 5, 6])
      }))

    it.scoped("a slow subscriber drops its oldest, counted", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2, { limits: { eventSubscriberBufferMessages: 2 } })
        const [a, b] = [nodes[0]!, nodes[1]!]
        const gate = yield* Deferred.make<void>()
        const events = yield* Effect.fork(b.events("news").pipe(
          Stream.tap(() => Deferred.await(gate)),
          Stream.takeUntil((message) => message.seq === 6),
          Stream.runCollect
        ))
        yield* eventually(Effect.map(b.stats, (stats) => stats.eventSubscribers === 1))
        for (let index = 1; index <= 6; index++) yield* a.send(network.ids[1]!, "news", index)
        yield* eventually(Effect.map(b.stats, (stats) => stats.envelopesReceived === 6))
        yield* Deferred.succeed(gate, undefined)
        const got = Chunk.toReadonlyArray(yield* Fiber.join(events)).map((message) => message.seq)
        for (let index = 1; index < got.length; index++) assert.isAbove(got[index]!, got[index - 1]!)
        assert.strictEqual(got.at(-1), 6)
        assert.isBelow(got.length, 6)
        // every message was either delivered or counted as dropped
        assert.strictEqual((yield* b.stats).droppedFull, 6 - got.length)
      }))

    it.scoped("bounds the number of event tags (eventTagsMax), forgetting unused logs", () =>
      Effect.gen(function*() {
        const { nodes } = yield* setup(1, { limits: { eventTagsMax: 2 } })
        const a = nodes[0]!
        for (const tag of ["t1", "t2", "t3", "t4"]) {
          const subscriber = yield* Effect.fork(Stream.runDrain(a.events(tag)))
          yield* eventually(Effect.map(a.stats, (stats) => stats.eventSubscribers === 1))
          yield* Fiber.interrupt(subscriber)
        }
        assert.strictEqual((yield* a.stats).eventTags, 2)
        // with every tag pinned by a live subscriber, a new one is refused
        const held = yield* Effect.fork(Stream.runDrain(a.events("p1")))
        const held2 = yield* Effect.fork(Stream.runDrain(a.events("p2")))
        yield* eventually(Effect.map(a.stats, (stats) => stats.eventSubscribers === 2))
        assert.strictEqual(yield* reasonOf(Stream.runDrain(a.events("p3"))), "ChannelsFull")
        yield* Fiber.interrupt(held)
        yield* Fiber.interrupt(held2)
      }))
  })

  describe("ordering", () => {
    it.scoped("with injected duplicates and reordering: per-stream order holds, nothing twice", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2, { seed: 7, duplicateRate: 0.2, reorderRate: 0.2 })
        const [a, b] = [nodes[0]!, nodes[1]!]
        const { handler, seen } = collector()
        yield* b.handle("seq", { body: Schema.Number }, handler)
        const count = 300
        for (let index = 0; index < count; index++) yield* a.send(network.ids[1]!, "seq", index)
        yield* network.flush
        yield* eventually(Effect.sync(() => seen.length === count), "all delivered")
        assert.deepStrictEqual(seen, Array.from({ length: count }, (_, index) => index))
        const stats = yield* b.stats
        assert.isAbove(stats.duplicatesDropped, 0)
        assert.strictEqual(stats.gapsSkipped, 0)
        assert.strictEqual(stats.reorderHeld, 0)
      }))

    it.scoped("with loss: gaps are skipped after reorderTimeout and counted, order kept", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2)
        const [a, b] = [nodes[0]!, nodes[1]!]
        const { handler, seen } = collector()
        yield* b.handle("seq", { body: Schema.Number }, handler)
        let index = 0
        yield* network.script(() => (index++ === 2 ? "drop" : "pass"))
        for (let body = 0; body < 6; body++) yield* a.send(network.ids[1]!, "seq", body)
        yield* eventually(Effect.map(b.stats, (stats) => stats.reorderHeld === 3))
        assert.deepStrictEqual(seen, [0, 1])
        yield* TestClock.adjust(Limits.defaults.reorderTimeout)
        yield* TestClock.adjust(Limits.defaults.reorderTimeout)
        yield* eventually(Effect.sync(() => seen.length === 5))
        assert.deepStrictEqual(seen, [0, 1, 3, 4, 5])
        const stats = yield* b.stats
        assert.strictEqual(stats.gapsSkipped, 1)
        assert.strictEqual(stats.reorderHeld, 0)
      }))

    it.scoped("a full reorder window skips ahead at once", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2, { limits: { reorderWindowMessages: 3 } })
        const [a, b] = [nodes[0]!, nodes[1]!]
        const { handler, seen } = collector()
        yield* b.handle("seq", { body: Schema.Number }, handler)
        let index = 0
        yield* network.script(() => (index++ === 0 ? "drop" : "pass"))
        for (let body = 0; body < 5; body++) yield* a.send(network.ids[1]!, "seq", body)
        yield* eventually(Effect.sync(() => seen.length === 4))
        assert.deepStrictEqual(seen, [1, 2, 3, 4])
        assert.strictEqual((yield* b.stats).gapsSkipped, 1)
      }))

    it.scoped("under seeded loss, duplication and reordering: strictly increasing, bounded state", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2, { seed: 42, lossRate: 0.1, duplicateRate: 0.1, reorderRate: 0.2 })
        const [a, b] = [nodes[0]!, nodes[1]!]
        const { handler, seen } = collector()
        yield* b.handle("seq", { body: Schema.Number }, handler)
        for (let body = 0; body < 500; body++) yield* a.send(network.ids[1]!, "seq", body)
        yield* network.flush
        yield* TestClock.adjust(Limits.defaults.reorderTimeout)
        yield* TestClock.adjust(Limits.defaults.reorderTimeout)
        yield* eventually(Effect.map(b.stats, (stats) => stats.reorderHeld === 0))
        const numbers = seen as Array<number>
        for (let index = 1; index < numbers.length; index++) assert.isAbove(numbers[index]!, numbers[index - 1]!)
        assert.isAbove(numbers.length, 350)
        assert.isAbove((yield* b.stats).gapsSkipped, 0)
      }))
  })

  describe("hostile input", () => {
    it.scoped("counts malformed, truncated, oversized and wrong-version frames; never crashes", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(3, { limits: { envelopeBytesMax: 1024 } })
        const a = nodes[0]!
        yield* a.handle("ok", { body: Schema.Unknown }, () => Effect.succeed("alive"))
        const hostile = yield* network.rawSession(2, 0)
        const valid = raw({ kind: Envelope.Kind.message, seq: 0, tag: "ok" })
        const frames = [
          new Uint8Array(0),
          new Uint8Array([0xc1]),
          valid.subarray(0, valid.length - 1), // truncated
          Codec.encode([2, 0, 0, 0, "ok", null, null, null]), // wrong version
          Codec.encode([1, 99, 0, 0, "ok", null, null, null]), // unknown kind
          Codec.encode([1, 0, -4, 0, "ok", null, null, null]), // negative stream
          Codec.encode([1, 0, 0, 0, "ok", null]), // wrong arity
          Codec.encode({ kind: 0 }), // a map
          new Uint8Array(2000), // oversized
          new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff]) // an array claiming 4 billion items
        ]
        for (const frame of frames) yield* Effect.orDie(hostile.send(frame))
        yield* eventually(Effect.map(a.stats, (stats) => stats.envelopesMalformed === frames.length))
        assert.strictEqual((yield* a.stats).envelopesReceived, 0)
        // the layer still answers, the hostile peer included
        assert.strictEqual(yield* nodes[1]!.call(network.ids[0]!, "ok", null).pipe(Effect.orDie), "alive")
      }))

    it.effect.prop("random frames from a peer never take the layer down", [Schema.Array(Schema.Uint8ArrayFromSelf)], ([frames]) =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2)
        const hostile = yield* network.rawSession(1, 0)
        for (const frame of frames) yield* Effect.orDie(hostile.send(frame))
        yield* eventually(Effect.map(nodes[0]!.stats, (stats) => stats.envelopesMalformed + stats.envelopesReceived === frames.length))
        yield* nodes[0]!.handle("ok", { body: Schema.Unknown }, () => Effect.succeed(1))
        assert.strictEqual(yield* nodes[0]!.call(network.ids[0]!, "ok", null).pipe(Effect.orDie), 1)
      }).pipe(Effect.scoped), { fastCheck: { numRuns: 20 } })
  })

  describe("actors", () => {
    it.scoped("attach, tell and ask, remote and local", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2)
        const [a, b] = [nodes[0]!, nodes[1]!]
        const told: Array<unknown> = []
        yield* b.attach("users/alice", (delivery) =>
          delivery.reply === undefined
            ? Effect.sync(() => void told.push(delivery.body))
            : delivery.reply({ ok: true, value: { from: delivery.peer, echo: delivery.body } }))
        yield* a.tell(network.ids[1]!, "users/alice", "hi")
        yield* eventually(Effect.sync(() => told.length === 1))
        assert.deepStrictEqual(told, ["hi"])
        assert.deepStrictEqual(yield* a.ask(network.ids[1]!, "users/alice", 7), { from: network.ids[0], echo: 7 })
        assert.deepStrictEqual(yield* b.ask(network.ids[1]!, "users/alice", 8), { from: network.ids[1], echo: 8 })
        yield* b.tell(network.ids[1]!, "users/alice", "self")
        yield* eventually(Effect.sync(() => told.length === 2))
        yield* b.attach("failing", (delivery) =>
          delivery.reply?.({ ok: false, error: new MessageError({ reason: "MailboxFull", detail: "busy" }) }) ?? Effect.void)
        assert.strictEqual(yield* reasonOf(a.ask(network.ids[1]!, "failing", null)), "MailboxFull")
      }))

    it.scoped("unknown path counted (ask gets NoHandler); Exists, ActorsFull and BadPath", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2, { limits: { actorsMax: 1 } })
        const [a, b] = [nodes[0]!, nodes[1]!]
        yield* a.tell(network.ids[1]!, "ghost", 1)
        assert.strictEqual(yield* reasonOf(a.ask(network.ids[1]!, "ghost", 1)), "NoHandler")
        assert.strictEqual((yield* b.stats).unknownActor, 2)
        yield* b.attach("one", () => Effect.void)
        assert.strictEqual(yield* reasonOf(b.attach("one", () => Effect.void)), "Exists")
        assert.strictEqual(yield* reasonOf(b.attach("two", () => Effect.void)), "ActorsFull")
        assert.strictEqual(yield* reasonOf(b.attach("/abs", () => Effect.void)), "BadPath")
        assert.strictEqual(yield* reasonOf(b.attach("", () => Effect.void)), "BadPath")
        assert.strictEqual(yield* reasonOf(a.tell(network.ids[1]!, "/abs", 1)), "NoHandler")
        assert.strictEqual((yield* b.stats).actorsAttached, 1)
      }))

    it.scoped("detaches with its scope", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2)
        const [a, b] = [nodes[0]!, nodes[1]!]
        yield* Effect.scoped(b.attach("temp", (delivery) => delivery.reply?.({ ok: true, value: 1 }) ?? Effect.void))
        assert.strictEqual((yield* b.stats).actorsAttached, 0)
        assert.strictEqual(yield* reasonOf(a.ask(network.ids[1]!, "temp", null)), "NoHandler")
      }))
  })

  describe("channels", () => {
    it.scoped("carries bodies both ways in order, remote and over local loopback", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2)
        const [a, b] = [nodes[0]!, nodes[1]!]
        yield* echoServer(b)
        for (const [from, to] of [[a, network.ids[1]!], [b, network.ids[1]!]] as const) {
          const channel = yield* from.open(to, "echo")
          for (let index = 0; index < 5; index++) yield* channel.send(index)
          const replies = yield* Stream.runCollect(Stream.take(channel.receive, 5))
          assert.deepStrictEqual(Chunk.toReadonlyArray(replies), [0, 1, 2, 3, 4].map((echo) => ({ echo })))
          assert.strictEqual(channel.stream % 2, 0)
        }
        assert.strictEqual((yield* b.stats).channelsOpen, 3) // one accepted from a; both ends of the loopback one
      }))

    it.scoped("close ends the peer's receive; the scope of open closes it", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2)
        const [a, b] = [nodes[0]!, nodes[1]!]
        const received = yield* Deferred.make<ReadonlyArray<unknown>>()
        yield* b.serve("sink", (channel) =>
          Effect.flatMap(Stream.runCollect(channel.receive), (bodies) => Deferred.succeed(received, Chunk.toReadonlyArray(bodies))).pipe(Effect.orDie))
        yield* Effect.scoped(Effect.gen(function*() {
          const channel = yield* a.open(network.ids[1]!, "sink")
          yield* channel.send("a")
          yield* channel.send("b")
        }))
        assert.deepStrictEqual(yield* Deferred.await(received), ["a", "b"])
        yield* eventually(Effect.map(b.stats, (stats) => stats.channelsOpen === 0))
        assert.strictEqual((yield* a.stats).channelsOpen, 0)
        const channel = yield* a.open(network.ids[1]!, "sink")
        yield* channel.close
        assert.strictEqual(yield* reasonOf(channel.send("late")), "Closed")
      }))

    it.scoped("session loss fails receive with Closed and fails pending calls", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2)
        const [a, b] = [nodes[0]!, nodes[1]!]
        const acceptedClosed = yield* Deferred.make<string>()
        yield* b.serve("hold", (channel) =>
          Stream.runDrain(channel.receive).pipe(
            Effect.match({ onFailure: (error) => error.reason, onSuccess: () => "ended" }),
            Effect.flatMap((reason) => Deferred.succeed(acceptedClosed, reason)),
            Effect.asVoid
          ))
        yield* b.handle("never", { body: Schema.Unknown }, () => Effect.never)
        const channel = yield* a.open(network.ids[1]!, "hold")
        yield* eventually(Effect.map(b.stats, (stats) => stats.channelsOpen === 1))
        const call = yield* Effect.fork(a.call(network.ids[1]!, "never", null))
        yield* eventually(Effect.map(a.stats, (stats) => stats.callsInFlight === 1))
        yield* network.disconnect(0, 1)
        assert.strictEqual(yield* reasonOf(Stream.runDrain(channel.receive)), "Closed")
        assert.strictEqual(yield* Deferred.await(acceptedClosed), "Closed")
        assert.strictEqual((yield* Effect.flip(Fiber.join(call))).reason, "Closed")
        assert.strictEqual(yield* reasonOf(channel.send(1)), "Closed")
        assert.strictEqual(yield* reasonOf(a.send(network.ids[1]!, "never", null)), "Unreachable")
        const stats = yield* a.stats
        assert.strictEqual(stats.callsInFlight, 0)
        assert.strictEqual(stats.channelsOpen, 0)
        assert.deepStrictEqual(yield* a.peers, [])
      }))

    it.scoped("refuses: no server (NoHandler), channelsPerPeerMax on both sides (ChannelsFull)", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2, { limits: { channelsPerPeerMax: 1 } })
        const [a, b] = [nodes[0]!, nodes[1]!]
        const nowhere = yield* a.open(network.ids[1]!, "nowhere")
        assert.strictEqual(yield* reasonOf(Stream.runDrain(nowhere.receive)), "NoHandler")
        yield* echoServer(b)
        yield* echoServer(a)
        yield* b.open(network.ids[0]!, "echo") // b holds its one channel with a
        yield* eventually(Effect.map(a.stats, (stats) => stats.channelsOpen === 1))
        assert.strictEqual(yield* reasonOf(a.open(network.ids[1]!, "echo")), "ChannelsFull")
        const c = yield* setup(3, { limits: { channelsPerPeerMax: 1 } })
        yield* echoServer(c.nodes[1]!)
        yield* c.nodes[0]!.open(c.network.ids[1]!, "echo")
        yield* eventually(Effect.map(c.nodes[1]!.stats, (stats) => stats.channelsOpen === 1))
        // node 2 is a peer too; the limit is per peer, so its channel is accepted...
        const third = yield* c.nodes[2]!.connect(c.network.addresses[1]!).pipe(Effect.orDie)
        const other = yield* c.nodes[2]!.open(third, "echo")
        yield* other.send("ping")
        assert.deepStrictEqual(Chunk.toReadonlyArray(yield* Stream.runCollect(Stream.take(other.receive, 1))), [{ echo: "ping" }])
        // ...while a raw second open from node 0 is refused and counted
        const hostile = yield* c.network.rawSession(0, 1)
        yield* Effect.orDie(hostile.send(raw({ kind: Envelope.Kind.channelOpen, stream: 40, seq: 0, tag: "echo" })))
        yield* eventually(Effect.map(c.nodes[1]!.stats, (stats) => stats.channelsRefused === 1))
      }))
  })

  describe("bounds", () => {
    it.scoped("a flood leaves every table within its limit", () =>
      Effect.gen(function*() {
        const limits = { streamsPerPeerMax: 8, reorderWindowMessages: 4, handlersInFlightPerPeerMax: 5, eventRetainedMessages: 4 }
        const { network, nodes } = yield* setup(2, { limits })
        const a = nodes[0]!
        yield* a.handle("slow", { body: Schema.Unknown }, () => Effect.never)
        // "log" is a tag with a log but no handler: a subscriber came and went
        const subscriber = yield* Effect.fork(Stream.runDrain(a.events("log")))
        yield* eventually(Effect.map(a.stats, (stats) => stats.eventSubscribers === 1))
        yield* Fiber.interrupt(subscriber)
        const hostile = yield* network.rawSession(1, 0)
        // out-of-order envelopes on many streams, unknown tags, unknown actors, calls to a slow handler
        for (let stream = 2; stream < 400; stream += 2) {
          yield* Effect.orDie(hostile.send(raw({ kind: Envelope.Kind.channelData, stream, seq: 5 })))
        }
        for (let seq = 0; seq < 200; seq++) {
          const kind = seq % 4
          const envelope = kind === 0
            ? raw({ kind: Envelope.Kind.message, seq, tag: `unknown-${seq}` })
            : kind === 1
            ? raw({ kind: Envelope.Kind.tell, seq, to: `ghost-${seq}` })
            : kind === 2
            ? raw({ kind: Envelope.Kind.call, seq, tag: "slow", corr: seq })
            : raw({ kind: Envelope.Kind.message, seq, tag: "log", body: seq })
          yield* Effect.orDie(hostile.send(envelope))
        }
        yield* eventually(Effect.map(a.stats, (stats) => stats.envelopesReceived === 199 + 200))
        const stats = yield* a.stats
        assert.isAtMost(stats.streamsTracked, limits.streamsPerPeerMax + 1) // + the local node's
        assert.isAtMost(stats.reorderHeld, limits.streamsPerPeerMax * limits.reorderWindowMessages)
        assert.strictEqual(stats.handlersInFlight, limits.handlersInFlightPerPeerMax)
        assert.strictEqual(stats.eventTags, 2)
        assert.strictEqual(stats.unknownTag, 50)
        assert.strictEqual(stats.unknownActor, 50)
        assert.strictEqual(stats.droppedFull, 50 - limits.handlersInFlightPerPeerMax)
        const retained = yield* Stream.runCollect(Stream.take(a.events("log", { since: 0 }), 4))
        assert.strictEqual(Chunk.size(retained), limits.eventRetainedMessages)
        // and time drains the reorder buffers
        yield* TestClock.adjust(Limits.defaults.reorderTimeout)
        yield* TestClock.adjust(Limits.defaults.reorderTimeout)
        assert.strictEqual((yield* a.stats).reorderHeld, 0)
        assert.isAbove((yield* a.stats).gapsSkipped, 0)
      }))

    it.scoped("connect/disconnect churn leaves no per-peer state behind", () =>
      Effect.gen(function*() {
        const { network, nodes } = yield* setup(2)
        const [a, b] = [nodes[0]!, nodes[1]!]
        yield* echoServer(b)
        for (let round = 0; round < 20; round++) {
          yield* network.disconnect(0, 1)
          yield* eventually(Effect.map(a.peers, (peers) => peers.length === 0))
          yield* Effect.orDie(a.connect(network.addresses[1]!))
          yield* eventually(Effect.map(b.peers, (peers) => peers.length === 1))
          const channel = yield* a.open(network.ids[1]!, "echo")
          yield* channel.send(round)
          yield* Stream.runDrain(Stream.take(channel.receive, 1))
        }
        yield* network.disconnect(0, 1)
        yield* eventually(Effect.map(b.stats, (stats) => stats.channelsOpen === 0 && stats.streamsTracked === 0))
        const stats = yield* a.stats
        assert.strictEqual(stats.channelsOpen, 0)
        assert.strictEqual(stats.streamsTracked, 0)
      }))
  })
})
