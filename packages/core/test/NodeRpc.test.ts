import { Rpc, RpcClient, RpcGroup } from "@effect/rpc"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import { assert, describe, it } from "@effect/vitest"
import type { Context } from "effect"
import { Cause, Chunk, Duration, Effect, Either, Exit, Fiber, Layer, Mailbox, Schema, Scope, Stream, TestClock } from "effect"
import { Packr } from "msgpackr"
import type { Channel } from "../src/Channel.js"
import * as Limits from "../src/Limits.js"
import { Messages } from "../src/Messages.js"
import type { NodeId } from "../src/NodeId.js"
import * as NodeIdModule from "../src/NodeId.js"
import * as NodeRpc from "../src/NodeRpc.js"
import { MessageError, NodeError } from "../src/WeftError.js"

// ---- a fake message layer: in-memory channel pairs, bodies copied through msgpack ---------------

const packr = new Packr({ useRecords: false })
const copy = (body: unknown): unknown => packr.unpack(packr.pack(body))

interface Pipe {
  readonly ends: ReadonlyArray<NodeId>
  readonly inboxes: ReadonlyArray<Mailbox.Mailbox<unknown, MessageError>>
  closed: boolean
}

interface Served {
  readonly onChannel: (channel: Channel) => Effect.Effect<void>
  readonly scope: Scope.Scope
}

class FakeNet {
  readonly servers = new Map<NodeId, Map<string, Served>>()
  readonly pipes = new Set<Pipe>()
  /** Bodies for which this returns true are lost in transit. */
  drop: (body: unknown) => boolean = () => false
  private nextStream = 0

  /** Fails every channel between `a` and `b`, as a lost session does. */
  breakLink(a: NodeId, b: NodeId): Effect.Effect<void> {
    return Effect.forEach([...this.pipes].filter((pipe) => pipe.ends.includes(a) && pipe.ends.includes(b)), (pipe) => {
      pipe.closed = true
      this.pipes.delete(pipe)
      return Effect.forEach(pipe.inboxes, (inbox) => inbox.fail(new MessageError({ reason: "Closed" })), { discard: true })
    }, { discard: true })
  }

  private deliver(pipe: Pipe, inbox: Mailbox.Mailbox<unknown, MessageError>) {
    return (body: unknown): Effect.Effect<void, MessageError> =>
      Effect.suspend(() => {
        if (pipe.closed) return Effect.fail(new MessageError({ reason: "Closed" }))
        const copied = copy(body)
        return this.drop(copied) ? Effect.void : Effect.asVoid(inbox.offer(copied))
      })
  }

  private open(local: NodeId, peer: NodeId, tag: string): Effect.Effect<Channel, MessageError, Scope.Scope> {
    return Effect.gen(this, function*() {
      const served = this.servers.get(peer)?.get(tag)
      if (served === undefined) return yield* new MessageError({ reason: "NoHandler" })
      const toOpener = yield* Mailbox.make<unknown, MessageError>()
      const toServer = yield* Mailbox.make<unknown, MessageError>()
      const pipe: Pipe = { ends: [local, peer], inboxes: [toOpener, toServer], closed: false }
      this.pipes.add(pipe)
      const close = Effect.suspend(() => {
        pipe.closed = true
        this.pipes.delete(pipe)
        return Effect.zipRight(toOpener.end, toServer.end)
      })
      const stream = this.nextStream++
      const serverSide: Channel = { peer: local, stream, send: this.deliver(pipe, toOpener), receive: Mailbox.toStream(toServer), close }
      yield* Effect.forkIn(served.onChannel(serverSide), served.scope)
      yield* Effect.addFinalizer(() => close)
      return { peer, stream, send: this.deliver(pipe, toServer), receive: Mailbox.toStream(toOpener), close }
    })
  }

  private serve(local: NodeId, tag: string, onChannel: Served["onChannel"]): Effect.Effect<void, never, Scope.Scope> {
    return Effect.gen(this, function*() {
      const scope = yield* Effect.scope
      let tags = this.servers.get(local)
      if (tags === undefined) {
        tags = new Map()
        this.servers.set(local, tags)
      }
      tags.set(tag, { onChannel, scope })
      yield* Effect.addFinalizer(() => Effect.sync(() => this.servers.get(local)?.delete(tag)))
    })
  }

  messages(local: NodeId): Messages["Type"] {
    const unused = Effect.die("not used")
    return Messages.of({
      local,
      connect: () => unused,
      peers: unused,
      send: () => unused,
      call: () => unused,
      callStream: () => Stream.die("not used"),
      handle: () => unused,
      handleStream: () => unused,
      events: () => Stream.die("not used"),
      attach: () => unused,
      tell: () => unused,
      ask: () => unused,
      open: (peer, tag) => this.open(local, peer, tag),
      serve: (tag, onChannel) => this.serve(local, tag, onChannel),
      stats: unused
    })
  }
}

const nodeId = (n: number): NodeId => NodeIdModule.fromBytes(new Uint8Array(32).fill(n))
const A = nodeId(1)
const B = nodeId(2)
const C = nodeId(3)

type NodeContext = Context.Context<NodeRpc.NodeRpc | Messages | Limits.Limits>

const startNode = <E>(
  net: FakeNet,
  id: NodeId,
  services: Layer.Layer<never, E, NodeRpc.NodeRpc>,
  limits: Partial<Limits.Values> = {}
): Effect.Effect<NodeContext, E, Scope.Scope> =>
  Layer.build(
    services.pipe(
      Layer.provideMerge(NodeRpc.layer),
      Layer.provideMerge(Layer.succeed(Messages, net.messages(id))),
      Layer.provideMerge(Limits.layer(limits))
    )
  )

const statsOf = (node: NodeContext) => Effect.flatMap(NodeRpc.NodeRpc, (rpc) => rpc.stats).pipe(Effect.provide(node))

const settle = Effect.forEach(Array.from({ length: 20 }), () => Effect.yieldNow(), { discard: true })

/** Lets the fibers run until `check` holds (no clock time passes). */
const eventually = (check: Effect.Effect<boolean>, what: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 2000; i++) {
      if (yield* check) return yield* settle
      yield* Effect.yieldNow()
    }
    return yield* Effect.dieMessage(`never happened: ${what}`)
  })

// ---- the services under test ---------------------------------------------------------------------

class NotFound extends Schema.TaggedError<NotFound>()("NotFound", { key: Schema.String }) {}

class Echo extends RpcGroup.make(
  Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String }),
  Rpc.make("Count", { payload: { n: Schema.Number }, success: Schema.Number, stream: true }),
  Rpc.make("Lookup", { payload: { key: Schema.String }, success: Schema.String, error: NotFound }),
  Rpc.make("Wrong", { success: Schema.Number }),
  Rpc.make("WhoAmI", { success: Schema.String }),
  Rpc.make("Slow", { payload: { ms: Schema.Number }, success: Schema.Number }),
  Rpc.make("Hang", { success: Schema.Void })
).middleware(NodeRpc.PeerMiddleware) {}

class Clock extends RpcGroup.make(Rpc.make("Now", { success: Schema.Number })) {}

class Clash extends RpcGroup.make(Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String })) {}

interface Probe {
  running: number
  maxRunning: number
  interrupted: number
}

const newProbe = (): Probe => ({ running: 0, maxRunning: 0, interrupted: 0 })

const echoLive = (probe: Probe) =>
  NodeRpc.serve(Echo, {
    Echo: ({ text }) => Effect.succeed(text),
    Count: ({ n }) => Stream.range(1, n),
    Lookup: ({ key }) => key === "known" ? Effect.succeed("value") : Effect.fail(new NotFound({ key })),
    // Deliberately wrong: the success schema is a number.
    Wrong: () => Effect.succeed("not a number" as unknown as number),
    WhoAmI: () => NodeRpc.RemotePeer,
    Slow: ({ ms }) =>
      Effect.acquireUseRelease(
        Effect.sync(() => {
          probe.running++
          probe.maxRunning = Math.max(probe.maxRunning, probe.running)
        }),
        () => Effect.as(Effect.sleep(ms), ms),
        () => Effect.sync(() => probe.running--)
      ),
    Hang: () => Effect.onInterrupt(Effect.never, () => Effect.sync(() => probe.interrupted++))
  })

const clockLive = NodeRpc.serve(Clock, { Now: () => Effect.succeed(42) })

const isClientError = (u: unknown): u is RpcClientError => u instanceof RpcClientError

// ---- tests ----------------------------------------------------------------------------------------

describe("NodeRpc", () => {
  it.scoped("unary and streaming calls reach this node and a peer through one client type", () =>
    Effect.gen(function*() {
      const net = new FakeNet()
      const b = yield* startNode(net, B, echoLive(newProbe()))
      const a = yield* startNode(net, A, Layer.empty)
      const local = yield* NodeRpc.client(Echo).pipe(Effect.provide(b))
      const remote = yield* NodeRpc.client(Echo, B).pipe(Effect.provide(a))
      const viaLocalId = yield* NodeRpc.client(Echo, B).pipe(Effect.provide(b))
      // One type for all three: this line does not compile otherwise.
      const clients: ReadonlyArray<RpcClient.RpcClient<RpcGroup.Rpcs<typeof Echo>, RpcClientError>> = [local, remote, viaLocalId]
      for (const client of clients) {
        assert.strictEqual(yield* client.Echo({ text: "hi" }), "hi")
        assert.deepStrictEqual(Chunk.toReadonlyArray(yield* Stream.runCollect(client.Count({ n: 5 }))), [1, 2, 3, 4, 5])
      }
      assert.strictEqual((yield* statsOf(b)).requestsReceived, 6)
    }))

  it.scoped("a typed error arrives typed; a wrong-typed success fails because schemas run", () =>
    Effect.gen(function*() {
      const net = new FakeNet()
      const b = yield* startNode(net, B, echoLive(newProbe()))
      const a = yield* startNode(net, A, Layer.empty)
      for (const client of [yield* NodeRpc.client(Echo).pipe(Effect.provide(b)), yield* NodeRpc.client(Echo, B).pipe(Effect.provide(a))]) {
        assert.strictEqual(yield* client.Lookup({ key: "known" }), "value")
        const error = yield* Effect.flip(client.Lookup({ key: "missing" }))
        assert.instanceOf(error, NotFound)
        assert.strictEqual((error as NotFound).key, "missing")
        const wrong = yield* Effect.exit(client.Wrong())
        assert.isTrue(Exit.isFailure(wrong) && Cause.isDie(wrong.cause), "a wrong-typed success is a defect")
        // The channel survives a per-call defect.
        assert.strictEqual(yield* client.Echo({ text: "still here" }), "still here")
      }
    }))

  it.scoped("RemotePeer is the caller's node ID, and a spoofed header is ignored", () =>
    Effect.gen(function*() {
      const net = new FakeNet()
      const b = yield* startNode(net, B, echoLive(newProbe()))
      const a = yield* startNode(net, A, Layer.empty)
      const remote = yield* NodeRpc.client(Echo, B).pipe(Effect.provide(a))
      const local = yield* NodeRpc.client(Echo).pipe(Effect.provide(b))
      assert.strictEqual(yield* remote.WhoAmI(), A)
      assert.strictEqual(yield* remote.WhoAmI(undefined, { headers: { "x-weft-peer": C } }), A)
      assert.strictEqual(yield* remote.WhoAmI().pipe(RpcClient.withHeaders({ "X-Weft-Peer": C })), A)
      assert.strictEqual(yield* local.WhoAmI(undefined, { headers: { "x-weft-peer": A } }), B)
    }))

  it.scoped("serves two groups on one node and rejects a duplicate rpc tag or name", () =>
    Effect.gen(function*() {
      const net = new FakeNet()
      const b = yield* startNode(net, B, Layer.merge(echoLive(newProbe()), clockLive))
      const a = yield* startNode(net, A, Layer.empty)
      const services = yield* Effect.flatMap(NodeRpc.NodeRpc, (rpc) => rpc.services).pipe(Effect.provide(b))
      assert.deepStrictEqual(
        services.map((service) => [service.name, [...service.methods]]).sort(),
        [["Clock", ["Now"]], ["Echo", ["Echo", "Count", "Lookup", "Wrong", "WhoAmI", "Slow", "Hang"]]]
      )
      assert.strictEqual(yield* (yield* NodeRpc.client(Clock, B).pipe(Effect.provide(a))).Now(), 42)

      const clash = yield* Layer.build(NodeRpc.serve(Clash, { Echo: ({ text }) => Effect.succeed(`clash ${text}`) })).pipe(
        Effect.provide(b),
        Effect.flip
      )
      assert.instanceOf(clash, NodeError)
      assert.strictEqual(clash.reason, "DuplicateRpc")
      const sameName = yield* Layer.build(NodeRpc.serve(RpcGroup.make(Rpc.make("Other")), { Other: () => Effect.void }, { name: "Clock" })).pipe(
        Effect.provide(b),
        Effect.flip
      )
      assert.strictEqual(sameName.reason, "DuplicateRpc")
      // The refused registrations changed nothing.
      assert.strictEqual(yield* (yield* NodeRpc.client(Echo, B).pipe(Effect.provide(a))).Echo({ text: "x" }), "x")
      assert.strictEqual((yield* Effect.flatMap(NodeRpc.NodeRpc, (rpc) => rpc.services).pipe(Effect.provide(b))).length, 2)
    }))

  it.scoped("an rpc the target does not serve fails with RpcClientError and is counted", () =>
    Effect.gen(function*() {
      const net = new FakeNet()
      const b = yield* startNode(net, B, echoLive(newProbe()))
      const a = yield* startNode(net, A, Layer.empty)
      const clock = yield* NodeRpc.client(Clock, B).pipe(Effect.provide(a))
      const error = yield* Effect.flip(clock.Now())
      assert.isTrue(isClientError(error))
      assert.include(error.message, "UnknownRpc")
      assert.strictEqual((yield* statsOf(b)).unknownRpc, 1)
    }))

  it.scoped("bounds each peer: 2 running, 2 queued, the rest refused and counted; another peer is not blocked", () =>
    Effect.gen(function*() {
      const net = new FakeNet()
      const probe = newProbe()
      const limits = { rpcRequestsInFlightPerPeerMax: 2, rpcRequestsQueuedPerPeerMax: 2 }
      const b = yield* startNode(net, B, echoLive(probe), limits)
      const a = yield* startNode(net, A, Layer.empty, limits)
      const c = yield* startNode(net, C, Layer.empty, limits)
      const fromA = yield* NodeRpc.client(Echo, B).pipe(Effect.provide(a))
      const fromC = yield* NodeRpc.client(Echo, B).pipe(Effect.provide(c))

      const calls = yield* Effect.fork(
        Effect.forEach(Array.from({ length: 10 }), () => Effect.either(fromA.Slow({ ms: 1000 })), { concurrency: "unbounded" })
      )
      yield* eventually(
        Effect.map(statsOf(b), (s) => s.requestsRunning === 2 && s.requestsQueued === 2 && s.requestsRejected === 6),
        "2 running, 2 queued, 6 refused"
      )
      assert.strictEqual(probe.running, 2)
      // Peer C gets through while A is saturated.
      assert.strictEqual(yield* fromC.Echo({ text: "c" }), "c")
      yield* TestClock.adjust("1 second")
      yield* eventually(Effect.map(statsOf(b), (s) => s.requestsQueued === 0 && s.requestsRunning === 2), "queue drained")
      yield* TestClock.adjust("1 second")
      const results = yield* Fiber.join(calls)

      const succeeded = results.filter(Either.isRight)
      const refused = results.filter(Either.isLeft).map((result) => result.left)
      assert.strictEqual(succeeded.length, 4)
      assert.strictEqual(refused.length, 6)
      for (const error of refused) {
        assert.isTrue(isClientError(error))
        assert.include(error.message, "Overloaded")
      }
      assert.strictEqual(probe.maxRunning, 2)
      const stats = yield* statsOf(b)
      assert.strictEqual(stats.requestsRejected, 6)
      assert.strictEqual(stats.requestsRunning, 0)
      assert.strictEqual(stats.requestsQueued, 0)
    }))

  it.scoped("an interrupted queued request leaves the queue without running", () =>
    Effect.gen(function*() {
      const net = new FakeNet()
      const probe = newProbe()
      const limits = { rpcRequestsInFlightPerPeerMax: 1, rpcRequestsQueuedPerPeerMax: 4 }
      const b = yield* startNode(net, B, echoLive(probe), limits)
      const a = yield* startNode(net, A, Layer.empty, limits)
      const remote = yield* NodeRpc.client(Echo, B).pipe(Effect.provide(a))
      const first = yield* Effect.fork(remote.Slow({ ms: 1000 }))
      const second = yield* Effect.fork(remote.Slow({ ms: 1000 }))
      yield* eventually(Effect.map(statsOf(b), (s) => s.requestsRunning === 1 && s.requestsQueued === 1), "one queued")
      yield* Fiber.interrupt(second)
      yield* eventually(Effect.map(statsOf(b), (s) => s.requestsQueued === 0), "queue emptied")
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(first), 1000)
      assert.strictEqual(probe.maxRunning, 1)
      assert.strictEqual(probe.running, 0)
    }))

  it.scoped("losing the channel fails calls in flight with RpcClientError; the next call reopens it", () =>
    Effect.gen(function*() {
      const net = new FakeNet()
      const probe = newProbe()
      const b = yield* startNode(net, B, echoLive(probe))
      const a = yield* startNode(net, A, Layer.empty)
      const remote = yield* NodeRpc.client(Echo, B).pipe(Effect.provide(a))
      const hanging = yield* Effect.fork(Effect.either(remote.Hang()))
      const counting = yield* Effect.fork(Effect.either(Stream.runCollect(remote.Count({ n: 100_000 }))))
      yield* eventually(Effect.map(statsOf(b), (s) => s.requestsRunning === 2), "both running")
      yield* net.breakLink(A, B)
      const hung = yield* Fiber.join(hanging)
      assert.isTrue(Either.isLeft(hung) && isClientError(hung.left))
      const counted = yield* Fiber.join(counting)
      assert.isTrue(Either.isLeft(counted) && isClientError(counted.left))
      // The server side saw the loss too: the handler was interrupted and its slot freed.
      yield* eventually(Effect.sync(() => probe.interrupted === 1), "handler interrupted")
      yield* eventually(Effect.map(statsOf(b), (s) => s.requestsRunning === 0 && s.channelsOpen === 0), "slots freed")
      assert.strictEqual(yield* remote.Echo({ text: "again" }), "again")
    }))

  it.scoped("a lost request fails with RpcClientError after the call timeout", () =>
    Effect.gen(function*() {
      const net = new FakeNet()
      yield* startNode(net, B, echoLive(newProbe()))
      const a = yield* startNode(net, A, Layer.empty)
      const remote = yield* NodeRpc.client(Echo, B).pipe(Effect.provide(a))
      const quick = yield* NodeRpc.client(Echo, B, { timeout: "1 second" }).pipe(Effect.provide(a))
      net.drop = (body) => (body as { _tag?: unknown })._tag === "Request"

      const lost = yield* Effect.fork(Effect.flip(remote.Echo({ text: "lost" })))
      const lostQuick = yield* Effect.fork(Effect.flip(quick.Echo({ text: "lost" })))
      yield* settle
      yield* TestClock.adjust("1 second")
      const quickError = yield* Fiber.join(lostQuick)
      assert.isTrue(isClientError(quickError))
      assert.isNull(lost.unsafePoll(), "the default timeout (callTimeout, 10 s) has not passed yet")
      yield* TestClock.adjust("9 seconds")
      const error = yield* Fiber.join(lost)
      assert.isTrue(isClientError(error))
      assert.include(error.message, "no reply")

      net.drop = () => false
      assert.strictEqual(yield* remote.Echo({ text: "found" }), "found")
    }))

  it.scoped("many concurrent calls on clients with different timeouts each fail at their own deadline, and are interrupted on the server", () =>
    Effect.gen(function*() {
      const net = new FakeNet()
      const probe = newProbe()
      yield* startNode(net, B, echoLive(probe))
      const a = yield* startNode(net, A, Layer.empty)
      const seconds = [5, 1, 3, 2]
      const clients = yield* Effect.forEach(seconds, (timeout) => NodeRpc.client(Echo, B, { timeout: Duration.seconds(timeout) }).pipe(Effect.provide(a)))
      const calls: Array<{ readonly due: number; readonly timeout: number; readonly fiber: Fiber.RuntimeFiber<RpcClientError, void> }> = []
      const start = (startedAt: number) =>
        Effect.forEach(clients, (client, index) =>
          Effect.forEach(Array.from({ length: 4 }), () =>
            Effect.map(Effect.fork(Effect.flip(client.Hang())), (fiber) => {
              calls.push({ due: startedAt + seconds[index]!, timeout: seconds[index]!, fiber })
            })), { discard: true })
      yield* start(0)
      yield* settle
      const done = () => calls.map((call) => call.fiber.unsafePoll() !== null)
      for (let second = 1; second <= 8; second++) {
        yield* TestClock.adjust("1 second")
        // Calls made later fall due later, on the same clients.
        if (second === 2) yield* start(2)
        const expected = calls.map((call) => call.due <= second)
        yield* eventually(Effect.sync(() => done().filter(Boolean).length === expected.filter(Boolean).length), `the calls due at ${second} s`)
        assert.deepStrictEqual(done(), expected, `after ${second} s`)
      }
      for (const call of calls) {
        const error = yield* Fiber.join(call.fiber)
        assert.isTrue(isClientError(error))
        assert.strictEqual((error as RpcClientError).message, `no reply from node ${NodeIdModule.short(B)} to Hang within ${call.timeout}s`)
      }
      // Each late call was interrupted, which tells the server: every handler was interrupted.
      yield* eventually(Effect.sync(() => probe.interrupted === calls.length), "every handler interrupted")
      assert.strictEqual(calls.length, 32)
    }))

  it.scoped("an unreachable target fails calls with RpcClientError", () =>
    Effect.gen(function*() {
      const net = new FakeNet()
      const a = yield* startNode(net, A, Layer.empty)
      const remote = yield* NodeRpc.client(Echo, B).pipe(Effect.provide(a))
      const error = yield* Effect.flip(remote.Echo({ text: "nobody" }))
      assert.isTrue(isClientError(error))
      assert.include(error.message, "NoHandler")
    }))

  it.scoped("hostile bodies are dropped and counted; the router keeps serving", () =>
    Effect.gen(function*() {
      const net = new FakeNet()
      const b = yield* startNode(net, B, echoLive(newProbe()))
      const a = yield* startNode(net, A, Layer.empty)
      const channel = yield* Effect.flatMap(Messages, (messages) => messages.open(B, NodeRpc.tag)).pipe(Effect.provide(a))
      const hostile: ReadonlyArray<unknown> = [
        42,
        null,
        [1, 2],
        { _tag: "Request", id: "x", tag: "Echo", payload: { text: "x" }, headers: [] },
        { _tag: "Request", id: "1", tag: "Echo", payload: { text: "x" }, headers: "nope" },
        { _tag: "Request", id: "1", tag: "Echo", payload: { text: "x" }, headers: [["a", 1]] },
        { _tag: "Request", id: "99999999999999999999999", tag: "Echo", payload: { text: "x" }, headers: [] },
        { _tag: "Ack", requestId: "abc" },
        { _tag: "Interrupt" },
        { _tag: "Nope" }
      ]
      yield* Effect.forEach(hostile, (body) => channel.send(body), { discard: true })
      yield* channel.send({ _tag: "Ping" })
      yield* channel.send({ _tag: "Request", id: "7", tag: "Echo", payload: { text: 5 }, headers: [] })
      yield* channel.send({ _tag: "Request", id: "8", tag: "Echo", payload: { text: "ok" }, headers: [] })
      const replies = Chunk.toReadonlyArray(yield* Stream.runCollect(Stream.take(channel.receive, 3))) as ReadonlyArray<any>
      assert.deepStrictEqual(replies[0], { _tag: "Pong" })
      assert.strictEqual(replies[1]._tag, "Exit")
      assert.strictEqual(replies[1].requestId, "7")
      assert.strictEqual(replies[1].exit.cause._tag, "Die", "a payload failing its schema is refused")
      assert.deepStrictEqual(replies[2], { _tag: "Exit", requestId: "8", exit: { _tag: "Success", value: "ok" } })
      const stats = yield* statsOf(b)
      assert.strictEqual(stats.malformed, hostile.length)
      assert.strictEqual(stats.requestsRunning, 0)
    }))

  it.scoped("a server body that is not an RPC message is dropped and counted by the client", () =>
    Effect.gen(function*() {
      const net = new FakeNet()
      const a = yield* startNode(net, A, Layer.empty)
      // B answers RPC channels with garbage, then with a well-formed Exit.
      yield* Effect.flatMap(Messages, (messages) =>
        messages.serve(NodeRpc.tag, (channel) =>
          Stream.runForEach(channel.receive, (body) => {
            const request = body as { readonly id: string }
            return Effect.forEach([
              { _tag: "ClientProtocolError", error: "forged" },
              { _tag: "Exit", requestId: "not a number", exit: {} },
              { _tag: "Chunk", requestId: request.id, values: [] },
              { _tag: "Exit", requestId: request.id, exit: { _tag: "Success", value: "from fake B" } }
            ], (reply) => channel.send(reply), { discard: true })
          }).pipe(Effect.ignore)
        )).pipe(Effect.provide(Layer.succeed(Messages, net.messages(B))))
      const remote = yield* NodeRpc.client(Echo, B).pipe(Effect.provide(a))
      assert.strictEqual(yield* remote.Echo({ text: "x" }), "from fake B")
      assert.strictEqual((yield* statsOf(a)).malformed, 3)
    }))

  describe("callEncoded", () => {
    it.scoped("calls a local method with an encoded payload and returns the encoded Exit", () =>
      Effect.gen(function*() {
        const net = new FakeNet()
        const b = yield* startNode(net, B, Layer.merge(echoLive(newProbe()), clockLive))
        const rpc = yield* Effect.provide(NodeRpc.NodeRpc, b)
        assert.deepStrictEqual(yield* rpc.callEncoded(B, "Echo", "Echo", { text: "hi" }), { _tag: "Success", value: "hi" })
        assert.deepStrictEqual(yield* rpc.callEncoded(B, "Clock", "Now", undefined), { _tag: "Success", value: 42 })
        const failed = (yield* rpc.callEncoded(B, "Echo", "Lookup", { key: "k" })) as any
        assert.deepStrictEqual(failed, { _tag: "Failure", cause: { _tag: "Fail", error: { _tag: "NotFound", key: "k" } } })
        const badPayload = (yield* rpc.callEncoded(B, "Echo", "Echo", { text: 5 })) as any
        assert.strictEqual(badPayload.cause._tag, "Die")
        const chunks: Array<unknown> = []
        const streamed = yield* rpc.callEncoded(B, "Echo", "Count", { n: 3 }, {
          onChunk: (values) => Effect.sync(() => chunks.push(...values))
        })
        assert.deepStrictEqual(streamed, { _tag: "Success", value: undefined })
        assert.deepStrictEqual(chunks, [1, 2, 3])
      }))

    it.scoped("checks the service and method of a local call", () =>
      Effect.gen(function*() {
        const net = new FakeNet()
        const b = yield* startNode(net, B, echoLive(newProbe()))
        const rpc = yield* Effect.provide(NodeRpc.NodeRpc, b)
        const noService = yield* Effect.flip(rpc.callEncoded(B, "Nope", "Echo", {}))
        assert.instanceOf(noService, NodeError)
        assert.strictEqual(noService.reason, "UnknownService")
        const noMethod = yield* Effect.flip(rpc.callEncoded(B, "Echo", "Nope", {}))
        assert.strictEqual(noMethod.reason, "UnknownMethod")
        assert.strictEqual((yield* statsOf(b)).requestsReceived, 0, "nothing was sent")
      }))

    it.scoped("calls a peer; an unknown remote method is UnknownMethod; a silent peer times out", () =>
      Effect.gen(function*() {
        const net = new FakeNet()
        yield* startNode(net, B, echoLive(newProbe()))
        const a = yield* startNode(net, A, Layer.empty)
        const rpc = yield* Effect.provide(NodeRpc.NodeRpc, a)
        assert.deepStrictEqual(yield* rpc.callEncoded(B, "Echo", "Echo", { text: "far" }), { _tag: "Success", value: "far" })
        const noMethod = yield* Effect.flip(rpc.callEncoded(B, "Echo", "Nope", {}))
        assert.strictEqual(noMethod.reason, "UnknownMethod")
        const unreachable = yield* Effect.flip(rpc.callEncoded(C, "Echo", "Echo", { text: "x" }))
        assert.instanceOf(unreachable, MessageError)
        net.drop = (body) => (body as { _tag?: unknown })._tag === "Request"
        const silent = yield* Effect.fork(Effect.flip(rpc.callEncoded(B, "Echo", "Echo", { text: "x" }, { timeout: "2 seconds" })))
        yield* settle
        yield* TestClock.adjust("2 seconds")
        const timedOut = yield* Fiber.join(silent)
        assert.instanceOf(timedOut, MessageError)
        assert.strictEqual(timedOut.reason, "Timeout")
      }))
  })
})
