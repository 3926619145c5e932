import { assert, describe, it } from "@effect/vitest"
import { Cause, Context, Deferred, Effect, Either, Exit, FastCheck, Fiber, Layer, Option, Schema, Scope, TestClock } from "effect"
import * as Actor from "../src/Actor.js"
import * as Identity from "../src/Identity.js"
import * as ActorCell from "../src/internal/actorCell.js"
import { Limits, defaults, layer as limitsLayer } from "../src/Limits.js"
import * as LinkPlain from "../src/LinkPlain.js"
import type { Values } from "../src/Limits.js"
import type { ActorDelivery } from "../src/Messages.js"
import { Messages, layer as messagesLayer } from "../src/Messages.js"
import * as NodeId from "../src/NodeId.js"
import { Transport } from "../src/Transport.js"
import * as TransportMemory from "../src/TransportMemory.js"
import { ActorError, MessageError } from "../src/WeftError.js"

// ---------------------------------------------------------------------------------------------
// A fake message layer: several nodes in one process, actor messages routed in memory. Bodies are
// copied with structuredClone so nothing is shared between "nodes", as over a wire.

type Deliver = (delivery: ActorDelivery) => Effect.Effect<void, MessageError>

interface FakeNet {
  readonly attachments: Map<NodeId.NodeId, Map<string, Deliver>>
  /** Actor messages that went through the fake (so a test can tell the direct path from this one). */
  readonly sent: { count: number; deliverFailures: number; unknownActor: number }
}

const makeNet = (): FakeNet => ({ attachments: new Map(), sent: { count: 0, deliverFailures: 0, unknownActor: 0 } })

const notUsed = Effect.die("not used")

const fakeMessages = (net: FakeNet, local: NodeId.NodeId): Messages["Type"] => {
  const attached = new Map<string, Deliver>()
  net.attachments.set(local, attached)
  const target = (peer: NodeId.NodeId, path: string) => net.attachments.get(peer)?.get(path)
  return {
    local,
    connect: () => notUsed,
    peers: notUsed,
    send: () => notUsed,
    call: () => notUsed,
    callStream: () => notUsed as never,
    handle: () => notUsed,
    handleStream: () => notUsed,
    events: () => notUsed as never,
    open: () => notUsed,
    serve: () => notUsed,
    stats: notUsed,
    attach: (path, deliver) =>
      Effect.acquireRelease(
        Effect.suspend(() => {
          if (attached.has(path)) return Effect.fail(new ActorError({ reason: "Exists" }))
          attached.set(path, deliver)
          return Effect.void
        }),
        () => Effect.sync(() => attached.delete(path))
      ),
    tell: (peer, path, body) =>
      Effect.suspend(() => {
        net.sent.count++
        const deliver = target(peer, path)
        if (deliver === undefined) {
          net.sent.unknownActor++
          return Effect.void
        }
        // A tell is fire and forget: the receiving side counts what it refuses.
        return deliver({ peer: local, body: structuredClone(body), reply: undefined }).pipe(
          Effect.catchAll(() => Effect.sync(() => net.sent.deliverFailures++))
        )
      }),
    ask: (peer, path, body, options) =>
      Effect.gen(function*() {
        net.sent.count++
        const deliver = target(peer, path)
        if (deliver === undefined) return yield* Effect.fail(new MessageError({ reason: "NoHandler" }))
        const answer = yield* Deferred.make<unknown, MessageError>()
        const reply: ActorDelivery["reply"] = (result) =>
          Deferred.done(answer, result.ok ? Exit.succeed(structuredClone(result.value)) : Exit.fail(result.error)).pipe(Effect.asVoid)
        yield* deliver({ peer: local, body: structuredClone(body), reply }).pipe(
          Effect.catchAll((error) => Deferred.fail(answer, error))
        )
        return yield* Deferred.await(answer).pipe(
          Effect.timeoutFail({ duration: options?.timeout ?? "10 seconds", onTimeout: () => new MessageError({ reason: "Timeout" }) })
        )
      })
  }
}

const nodeId = (seed: number) => NodeId.fromBytes(new Uint8Array(32).fill(seed))

const makeNode = (net: FakeNet, seed: number, overrides: Partial<Values> = {}) =>
  Effect.gen(function*() {
    const id = nodeId(seed)
    const messages = fakeMessages(net, id)
    const registry = yield* Actor.make.pipe(
      Effect.provideService(Messages, messages),
      Effect.provideService(Limits, { ...defaults, ...overrides })
    )
    return { id, messages, registry }
  })

// ---------------------------------------------------------------------------------------------
// A counter actor used by most tests.

const Command = Schema.Struct({
  op: Schema.Literal("add", "get", "fail", "die", "wait"),
  n: Schema.Number
})
type Command = typeof Command.Type

const add = (n: number): Command => ({ op: "add", n })
const get: Command = { op: "get", n: 0 }
const fail: Command = { op: "fail", n: 0 }
const die: Command = { op: "die", n: 0 }
const wait: Command = { op: "wait", n: 0 }

const counter = (options: {
  readonly supervision?: Actor.Supervision
  readonly mailbox?: Actor.MailboxOptions
  readonly gate?: Deferred.Deferred<void>
} = {}): Actor.Behavior<number, Command, number, string> => ({
  message: Command,
  reply: Schema.Number,
  initial: Effect.succeed(0),
  receive: (state, message) => {
    switch (message.op) {
      case "add":
        return Effect.succeed([state + message.n, state + message.n] as const)
      case "get":
        return Effect.succeed([state, state] as const)
      case "fail":
        return Effect.fail("boom")
      case "die":
        return Effect.die("kaboom")
      case "wait":
        return options.gate === undefined ? Effect.never : Effect.as(Deferred.await(options.gate), [state, state] as const)
    }
  },
  mailbox: options.mailbox ?? { capacity: 64, overflow: "reject" },
  supervision: options.supervision ?? "restart"
})

const CounterSchemas = { message: Command, reply: Schema.Number }

/** Lets the actor fiber run until `condition` holds (no clock involved). */
const until = (condition: Effect.Effect<boolean>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 10_000; i++) {
      if (yield* condition) return
      yield* Effect.yieldNow()
    }
    assert.fail("condition never held")
  })

const busy = (actor: Actor.LocalActor<Command, number>) => until(Effect.map(actor.stats, (stats) => stats.processed >= 1))

/** Opens the gate and lets the actor empty its mailbox. */
const release = (actor: Actor.LocalActor<Command, number>, gate: Deferred.Deferred<void>) =>
  Deferred.succeed(gate, undefined).pipe(Effect.zipRight(until(Effect.map(actor.stats, (stats) => stats.mailboxSize === 0))))

const actorError = <R>(effect: Effect.Effect<unknown, ActorError | MessageError, R>) =>
  Effect.map(Effect.flip(effect), (error) => `${error._tag}:${error.reason}`)

// ---------------------------------------------------------------------------------------------

describe("Actor", () => {
  describe("addresses and paths", () => {
    it("accepts path segments of [a-z0-9._-] separated by /", () => {
      for (const path of ["a", "users/42", "svc/counter-1", "a.b_c/d", "x/.hidden"]) {
        assert.isTrue(Either.isRight(Actor.checkPath(path)), path)
      }
    })

    it("refuses empty, long, upper-case, dot-only and empty-segment paths with BadPath", () => {
      for (const path of ["", "/a", "a/", "a//b", "A", "a b", "..", "a/./b", "é", "a\u0000", "x".repeat(257)]) {
        const result = Actor.checkPath(path)
        assert.isTrue(Either.isLeft(result) && result.left.reason === "BadPath", JSON.stringify(path))
      }
      assert.isTrue(Either.isRight(Actor.checkPath("x".repeat(256))))
    })

    it("formats and parses nodeId/path, refusing hostile text with a typed error", () => {
      const address = { node: nodeId(7), path: "svc/counter" }
      const parsed = Actor.parseAddress(Actor.formatAddress(address))
      assert.deepStrictEqual(parsed, Either.right(address))
      for (const text of ["", "/", "svc/counter", `${nodeId(7)}`, `${nodeId(7)}/`, `${nodeId(7).toUpperCase()}/a`, `${nodeId(7)}x/a`, `${nodeId(7)}/a//b`]) {
        const result = Actor.parseAddress(text)
        assert.isTrue(Either.isLeft(result) && result.left.reason === "BadPath", text)
      }
    })

    it.scoped("spawn refuses a bad path, a taken path and more than actorsMax actors", () =>
      Effect.gen(function*() {
        const { registry } = yield* makeNode(makeNet(), 1, { actorsMax: 2 })
        assert.strictEqual(yield* actorError(registry.spawn("Bad Path", counter())), "ActorError:BadPath")
        yield* registry.spawn("a", counter())
        assert.strictEqual(yield* actorError(registry.spawn("a", counter())), "ActorError:Exists")
        yield* registry.spawn("b", counter())
        assert.strictEqual(yield* actorError(registry.spawn("c", counter())), "ActorError:ActorsFull")
        assert.deepStrictEqual([...(yield* registry.paths)].sort(), ["a", "b"])
      }))

    it.scoped("a mailbox without a positive integer capacity is a defect, not a running actor", () =>
      Effect.gen(function*() {
        const { registry } = yield* makeNode(makeNet(), 1)
        const exit = yield* Effect.exit(registry.spawn("a", counter({ mailbox: { capacity: 0, overflow: "reject" } })))
        assert.isTrue(Exit.isFailure(exit) && !Exit.isInterrupted(exit))
        assert.deepStrictEqual(yield* registry.paths, [])
      }))
  })

  describe("local actors", () => {
    it.scoped("keeps state across tells and asks", () =>
      Effect.gen(function*() {
        const { registry } = yield* makeNode(makeNet(), 1)
        const actor = yield* registry.spawn("counter", counter())
        yield* actor.tell(add(2))
        yield* actor.tell(add(3))
        assert.strictEqual(yield* actor.ask(add(10)), 15)
        assert.strictEqual(yield* actor.ask(get), 15)
        const stats = yield* actor.stats
        assert.deepInclude(stats, { received: 4, processed: 4, dropped: 0, failures: 0, state: "running" })
      }))

    it.scoped("processes one message at a time, whatever the number of concurrent senders", () =>
      Effect.gen(function*() {
        const { registry } = yield* makeNode(makeNet(), 1)
        let inFlight = 0
        let inFlightMax = 0
        const actor = yield* registry.spawn("serial", {
          ...counter(),
          receive: (state: number, message: Command) =>
            Effect.gen(function*() {
              inFlight++
              inFlightMax = Math.max(inFlightMax, inFlight)
              yield* Effect.yieldNow()
              yield* Effect.yieldNow()
              inFlight--
              return [state + message.n, state + message.n] as const
            })
        })
        const replies = yield* Effect.forEach(Array.from({ length: 50 }, () => add(1)), (message) => actor.ask(message), { concurrency: "unbounded" })
        assert.strictEqual(inFlightMax, 1)
        assert.deepStrictEqual([...replies].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i + 1))
      }))

    it.scoped("passes the receiving address and the sender in the context", () =>
      Effect.gen(function*() {
        const { id, registry } = yield* makeNode(makeNet(), 1)
        const actor = yield* registry.spawn("whoami", {
          message: Schema.Null,
          reply: Schema.String,
          initial: Effect.void,
          receive: (state, _message, context) => Effect.succeed([`${Actor.formatAddress(context.self)}<${context.sender}`, state] as const),
          mailbox: { capacity: 1, overflow: "reject" },
          supervision: "stop"
        })
        assert.strictEqual(yield* actor.ask(null), `${id}/whoami<${id}`)
      }))

    it.scoped("a ref to a local address with the actor's schemas skips the message layer", () =>
      Effect.gen(function*() {
        const net = makeNet()
        const { id, registry } = yield* makeNode(net, 1)
        yield* registry.spawn("counter", counter())
        const ref = yield* registry.ref(`${id}/counter`, CounterSchemas)
        yield* ref.tell(add(4))
        assert.strictEqual(yield* ref.ask(get), 4)
        assert.strictEqual(net.sent.count, 0)
      }))

    it.scoped("a ref to a local address with other schemas goes through the edge and its schema check", () =>
      Effect.gen(function*() {
        const net = makeNet()
        const { id, registry } = yield* makeNode(net, 1)
        const actor = yield* registry.spawn("counter", counter())
        const wrong = yield* registry.ref(`${id}/counter`, { message: Schema.String, reply: Schema.Number })
        assert.strictEqual(yield* actorError(wrong.ask("hello")), "MessageError:Schema")
        const compatible = yield* registry.ref({ node: id, path: "counter" }, { message: Schema.Struct({ op: Schema.Literal("add"), n: Schema.Number }), reply: Schema.Number })
        assert.strictEqual(yield* compatible.ask({ op: "add", n: 3 }), 3)
        assert.strictEqual(net.sent.count, 2)
        assert.strictEqual((yield* actor.stats).rejected, 1)
      }))

    it.scoped("a ref to a local path with no actor fails with NotFound, and finds one spawned later", () =>
      Effect.gen(function*() {
        const { id, registry } = yield* makeNode(makeNet(), 1)
        const ref = yield* registry.ref(`${id}/later`, CounterSchemas)
        assert.strictEqual(yield* actorError(ref.tell(add(1))), "ActorError:NotFound")
        assert.strictEqual(yield* actorError(registry.stats("later")), "ActorError:NotFound")
        yield* registry.spawn("later", counter())
        assert.strictEqual(yield* ref.ask(add(1)), 1)
        assert.strictEqual((yield* registry.stats("later")).processed, 1)
      }))

    it.scoped("ref refuses a bad address with BadPath", () =>
      Effect.gen(function*() {
        const { id, registry } = yield* makeNode(makeNet(), 1, { actorPathCharsMax: 8 })
        assert.strictEqual(yield* actorError(registry.ref("nonsense", CounterSchemas)), "ActorError:BadPath")
        assert.strictEqual(yield* actorError(registry.ref({ node: id, path: "a/../b" }, CounterSchemas)), "ActorError:BadPath")
        assert.strictEqual(yield* actorError(registry.ref(`${id}/abcdefghi`, CounterSchemas)), "ActorError:BadPath")
      }))
  })

  describe("asks and time", () => {
    it.scoped("an ask with no reply fails with Timeout after its timeout, or callTimeout by default", () =>
      Effect.gen(function*() {
        const { registry } = yield* makeNode(makeNet(), 1, { callTimeout: defaults.callTimeout })
        const actor = yield* registry.spawn("stuck", counter())
        const explicit = yield* Effect.fork(actorError(actor.ask(wait, { timeout: "1 second" })))
        yield* TestClock.adjust("999 millis")
        assert.isTrue((yield* Fiber.poll(explicit))._tag === "None")
        yield* TestClock.adjust("1 millis")
        assert.strictEqual(yield* Fiber.join(explicit), "MessageError:Timeout")
        const byDefault = yield* Effect.fork(actorError(actor.ask(get)))
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual(yield* Fiber.join(byDefault), "MessageError:Timeout")
      }))
  })

  describe("mailbox", () => {
    const filled = (overflow: Actor.Overflow) =>
      Effect.gen(function*() {
        const { registry } = yield* makeNode(makeNet(), 1)
        const gate = yield* Deferred.make<void>()
        const actor = yield* registry.spawn("box", counter({ gate, mailbox: { capacity: 2, overflow } }))
        yield* Effect.fork(actor.tell(wait))
        yield* busy(actor)
        yield* actor.tell(add(1))
        yield* actor.tell(add(2))
        return { actor, gate }
      })

    it.scoped("reject: a tell or ask into a full mailbox fails with MailboxFull and is counted", () =>
      Effect.gen(function*() {
        const { actor, gate } = yield* filled("reject")
        assert.strictEqual(yield* actorError(actor.tell(add(4))), "ActorError:MailboxFull")
        assert.strictEqual(yield* actorError(actor.ask(add(4))), "ActorError:MailboxFull")
        assert.deepInclude(yield* actor.stats, { dropped: 2, mailboxSize: 2 })
        yield* release(actor, gate)
        assert.strictEqual(yield* actor.ask(get), 3)
      }))

    it.scoped("dropNewest: a tell into a full mailbox is dropped silently and counted; an ask fails at once", () =>
      Effect.gen(function*() {
        const { actor, gate } = yield* filled("dropNewest")
        yield* actor.tell(add(4))
        assert.strictEqual(yield* actorError(actor.ask(add(4))), "ActorError:MailboxFull")
        assert.deepInclude(yield* actor.stats, { dropped: 2, mailboxSize: 2 })
        yield* release(actor, gate)
        assert.strictEqual(yield* actor.ask(get), 3)
      }))

    it.scoped("dropOldest: the oldest letter is evicted and counted; an evicted ask fails with MailboxFull", () =>
      Effect.gen(function*() {
        const { actor, gate } = yield* filled("dropOldest")
        const evictedAsk = yield* Effect.fork(actorError(actor.ask(add(100))))
        yield* until(Effect.map(actor.stats, (stats) => stats.received === 4))
        yield* actor.tell(add(4))
        yield* actor.tell(add(8))
        assert.strictEqual(yield* Fiber.join(evictedAsk), "ActorError:MailboxFull")
        assert.deepInclude(yield* actor.stats, { dropped: 3, mailboxSize: 2 })
        yield* release(actor, gate)
        assert.strictEqual(yield* actor.ask(get), 12)
      }))

    it.scoped("a flood into a full mailbox stays bounded and every loss is counted", () =>
      Effect.gen(function*() {
        for (const overflow of ["reject", "dropNewest", "dropOldest"] as const) {
          const { registry } = yield* makeNode(makeNet(), 1)
          const gate = yield* Deferred.make<void>()
          const actor = yield* registry.spawn(`flood-${overflow.toLowerCase()}`, counter({ gate, mailbox: { capacity: 8, overflow } }))
          yield* actor.tell(wait)
          yield* busy(actor)
          let refused = 0
          for (let i = 0; i < 10_000; i++) {
            const exit = yield* Effect.exit(actor.tell(add(1)))
            if (Exit.isFailure(exit)) refused++
            assert.isAtMost(yield* Effect.map(actor.stats, (stats) => stats.mailboxSize), 8)
          }
          const stats = yield* actor.stats
          assert.deepInclude(stats, { received: 10_001, dropped: 10_000 - 8, mailboxSize: 8 }, overflow)
          assert.strictEqual(refused, overflow === "reject" ? 10_000 - 8 : 0, overflow)
          yield* release(actor, gate)
          assert.strictEqual(yield* actor.ask(get), 8, overflow)
        }
      }))
  })

  describe("supervision", () => {
    it.scoped("restart: a failing or dying receive answers the ask with Remote and restarts from initial", () =>
      Effect.gen(function*() {
        const { registry } = yield* makeNode(makeNet(), 1)
        const actor = yield* registry.spawn("restart", counter({ supervision: "restart" }))
        yield* actor.ask(add(5))
        assert.strictEqual(yield* actorError(actor.ask(fail)), "MessageError:Remote")
        assert.strictEqual(yield* actor.ask(get), 0)
        yield* actor.ask(add(7))
        const died = yield* Effect.flip(actor.ask(die))
        assert.strictEqual(died._tag === "MessageError" ? died.detail : undefined, "receive died")
        assert.strictEqual(yield* actor.ask(get), 0)
        assert.deepInclude(yield* actor.stats, { failures: 2, restarts: 2, state: "running" })
      }))

    it.scoped("restart: more than actorRestartsMax restarts within actorRestartWindow stop the actor", () =>
      Effect.gen(function*() {
        const { registry } = yield* makeNode(makeNet(), 1, { actorRestartsMax: 2, actorRestartWindow: defaults.actorRestartWindow })
        const actor = yield* registry.spawn("fragile", counter({ supervision: "restart" }))
        yield* Effect.flip(actor.ask(fail))
        yield* Effect.flip(actor.ask(fail))
        assert.strictEqual((yield* actor.stats).state, "running")
        yield* Effect.flip(actor.ask(fail))
        assert.deepInclude(yield* actor.stats, { restarts: 2, failures: 3, state: "stopped" })
        assert.strictEqual(yield* actorError(actor.ask(get)), "ActorError:Stopped")
        assert.strictEqual(yield* actorError(actor.tell(get)), "ActorError:Stopped")
        assert.deepStrictEqual(yield* registry.paths, [])
      }))

    it.scoped("restart: restarts older than the window no longer count", () =>
      Effect.gen(function*() {
        const { registry } = yield* makeNode(makeNet(), 1, { actorRestartsMax: 2, actorRestartWindow: defaults.actorRestartWindow })
        const actor = yield* registry.spawn("fragile", counter({ supervision: "restart" }))
        yield* Effect.flip(actor.ask(fail))
        yield* Effect.flip(actor.ask(fail))
        yield* TestClock.adjust("10 seconds")
        yield* Effect.flip(actor.ask(fail))
        yield* Effect.flip(actor.ask(fail))
        assert.deepInclude(yield* actor.stats, { restarts: 4, state: "running" })
        yield* Effect.flip(actor.ask(fail))
        assert.deepInclude(yield* actor.stats, { restarts: 4, state: "stopped" })
      }))

    it.scoped("stop: the first failure stops the actor, answers queued asks with Stopped and frees its path", () =>
      Effect.gen(function*() {
        const { registry } = yield* makeNode(makeNet(), 1)
        const gate = yield* Deferred.make<void>()
        const actor = yield* registry.spawn("brittle", counter({ supervision: "stop", gate }))
        yield* actor.ask(add(5))
        yield* actor.tell(wait)
        yield* until(Effect.map(actor.stats, (stats) => stats.processed === 2))
        const failing = yield* Effect.fork(actorError(actor.ask(fail)))
        const queued = yield* Effect.fork(actorError(actor.ask(get)))
        yield* until(Effect.map(actor.stats, (stats) => stats.mailboxSize === 2))
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual(yield* Fiber.join(failing), "MessageError:Remote")
        assert.strictEqual(yield* Fiber.join(queued), "ActorError:Stopped")
        assert.deepInclude(yield* actor.stats, { state: "stopped", restarts: 0, failures: 1 })
        const again = yield* registry.spawn("brittle", counter())
        assert.strictEqual(yield* again.ask(get), 0)
      }))

    it.scoped("resume: a failure keeps the state from before the failing message", () =>
      Effect.gen(function*() {
        const { registry } = yield* makeNode(makeNet(), 1)
        const actor = yield* registry.spawn("stubborn", counter({ supervision: "resume" }))
        yield* actor.ask(add(5))
        yield* Effect.flip(actor.ask(fail))
        yield* Effect.flip(actor.ask(die))
        assert.strictEqual(yield* actor.ask(get), 5)
        assert.deepInclude(yield* actor.stats, { failures: 2, restarts: 0, state: "running" })
      }))

    it.effect("a failing actor never fails the scope that spawned it; closing the scope stops it", () =>
      Effect.gen(function*() {
        const { registry } = yield* makeNode(makeNet(), 1)
        const scope = yield* Scope.make()
        const gate = yield* Deferred.make<void>()
        const brittle = yield* registry.spawn("brittle", counter({ supervision: "stop" })).pipe(Scope.extend(scope))
        const healthy = yield* registry.spawn("healthy", counter({ gate })).pipe(Scope.extend(scope))
        yield* Effect.flip(brittle.tell(die).pipe(Effect.zipRight(brittle.ask(get))))
        assert.strictEqual((yield* brittle.stats).state, "stopped")
        assert.strictEqual(yield* healthy.ask(add(1)), 1)
        const inFlight = yield* Effect.fork(actorError(healthy.ask(wait)))
        const queued = yield* Effect.fork(actorError(healthy.ask(get)))
        yield* until(Effect.map(healthy.stats, (stats) => stats.mailboxSize === 1))
        yield* Scope.close(scope, Exit.void)
        assert.strictEqual(yield* Fiber.join(inFlight), "ActorError:Stopped")
        assert.strictEqual(yield* Fiber.join(queued), "ActorError:Stopped")
        assert.strictEqual((yield* healthy.stats).state, "stopped")
        assert.deepStrictEqual(yield* registry.paths, [])
      }))

    it.scoped("one wake-up handles every waiting letter, in order, each counted once", () =>
      Effect.gen(function*() {
        const { registry } = yield* makeNode(makeNet(), 1)
        const gate = yield* Deferred.make<void>()
        const seen: Array<number> = []
        const actor = yield* registry.spawn("recorder", {
          ...counter({ gate, mailbox: { capacity: 256, overflow: "reject" } }),
          receive: (state: number, message: Command) =>
            message.op === "wait"
              ? Effect.as(Deferred.await(gate), [state, state] as const)
              : Effect.sync(() => {
                seen.push(message.n)
                return [state + message.n, state + message.n] as const
              })
        })
        yield* actor.tell(wait)
        yield* busy(actor)
        for (let n = 1; n <= 200; n++) yield* actor.tell(add(n))
        const total = yield* Effect.fork(actor.ask(get))
        yield* until(Effect.map(actor.stats, (stats) => stats.mailboxSize === 201))
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual(yield* Fiber.join(total), 20_100)
        assert.deepStrictEqual(seen.slice(0, 200), Array.from({ length: 200 }, (_, i) => i + 1))
        assert.deepInclude(yield* actor.stats, { received: 202, processed: 202, mailboxSize: 0 })
      }))

    it.effect("an interruption pending between letters takes no further letter: the rest are answered Stopped, uncounted", () =>
      Effect.gen(function*() {
        const cell = ActorCell.make(counter(), { address: { node: nodeId(1), path: "cell" }, state: 0, limits: defaults, onStop: Effect.void })
        const run = yield* Effect.fork(cell.run)
        const gate = yield* Deferred.make<void>()
        const answers: Array<string> = []
        const record: ActorCell.Replier<number> = (result) =>
          Effect.sync(() => answers.push(Exit.isSuccess(result) ? `ok:${result.value}` : `${Cause.squash(result.cause)}`))
        // The first letter's reply runs in the loop's uninterruptible part and holds it there.
        yield* cell.enqueue({ message: add(1), sender: nodeId(2), reply: (result) => Effect.zipRight(Deferred.await(gate), record(result)) })
        yield* until(Effect.map(cell.stats, (stats) => stats.processed === 1))
        for (const n of [2, 3, 4]) yield* cell.enqueue({ message: add(n), sender: nodeId(2), reply: record })
        const interrupting = yield* Effect.fork(Fiber.interrupt(run))
        yield* until(Effect.map(Fiber.status(interrupting), (status) => status._tag === "Suspended"))
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(interrupting)
        assert.strictEqual(answers[0], "ok:1")
        assert.deepStrictEqual(answers.slice(1).map((answer) => answer.includes("Stopped")), [true, true, true])
        assert.deepInclude(yield* cell.stats, { received: 4, processed: 1, mailboxSize: 0, state: "stopped" })
      }))

    it.effect("an interruption during receive answers that letter and every queued ask with Stopped", () =>
      Effect.gen(function*() {
        const { registry } = yield* makeNode(makeNet(), 1)
        const scope = yield* Scope.make()
        const actor = yield* registry.spawn("sleepy", counter()).pipe(Scope.extend(scope))
        yield* actor.tell(add(1))
        const inFlight = yield* Effect.fork(actorError(actor.ask(wait)))
        yield* until(Effect.map(actor.stats, (stats) => stats.processed === 2))
        const queued = yield* Effect.forEach([get, add(2), get], (message) => Effect.fork(actorError(actor.ask(message))))
        yield* until(Effect.map(actor.stats, (stats) => stats.mailboxSize === 3))
        yield* Scope.close(scope, Exit.void)
        assert.strictEqual(yield* Fiber.join(inFlight), "ActorError:Stopped")
        for (const fiber of queued) assert.strictEqual(yield* Fiber.join(fiber), "ActorError:Stopped")
        assert.deepInclude(yield* actor.stats, { received: 5, processed: 2, state: "stopped" })
      }))

    it.scoped("stop on the handle stops the actor and detaches it", () =>
      Effect.gen(function*() {
        const net = makeNet()
        const a = yield* makeNode(net, 1)
        const b = yield* makeNode(net, 2)
        const actor = yield* b.registry.spawn("svc", counter())
        const remote = yield* a.registry.ref({ node: b.id, path: "svc" }, CounterSchemas)
        assert.strictEqual(yield* remote.ask(add(1)), 1)
        yield* actor.stop
        yield* actor.stop
        assert.strictEqual(yield* actorError(actor.tell(get)), "ActorError:Stopped")
        assert.strictEqual(yield* actorError(remote.ask(get)), "ActorError:NotFound")
        assert.isFalse(net.attachments.get(b.id)?.has("svc"))
      }))
  })

  describe("remote actors", () => {
    const pair = Effect.gen(function*() {
      const net = makeNet()
      const a = yield* makeNode(net, 1)
      const b = yield* makeNode(net, 2)
      return { net, a, b }
    })

    it.scoped("tell and ask a peer's actor through the message layer, with the same ActorRef type", () =>
      Effect.gen(function*() {
        const { a, b, net } = yield* pair
        const actor = yield* b.registry.spawn("svc/counter", counter())
        const remote: Actor.ActorRef<Command, number> = yield* a.registry.ref(`${b.id}/svc/counter`, CounterSchemas)
        assert.strictEqual(yield* remote.ask(add(2)), 2)
        yield* remote.tell(add(3))
        assert.strictEqual(yield* remote.ask(get), 5)
        assert.strictEqual(net.sent.count, 3)
        assert.deepInclude(yield* actor.stats, { received: 3, processed: 3 })
      }))

    it.scoped("the sender in the context is the asking node", () =>
      Effect.gen(function*() {
        const { a, b } = yield* pair
        yield* b.registry.spawn("whoami", {
          message: Schema.Null,
          reply: Schema.String,
          initial: Effect.void,
          receive: (state, _message, context) => Effect.succeed([context.sender, state] as const),
          mailbox: { capacity: 4, overflow: "reject" },
          supervision: "stop"
        })
        const remote = yield* a.registry.ref({ node: b.id, path: "whoami" }, { message: Schema.Null, reply: Schema.String })
        assert.strictEqual(yield* remote.ask(null), a.id)
      }))

    it.scoped("a body that does not match the actor's schema is a Schema error for an ask and counted for a tell", () =>
      Effect.gen(function*() {
        const { a, b, net } = yield* pair
        const actor = yield* b.registry.spawn("svc", counter())
        const wrong = yield* a.registry.ref(`${b.id}/svc`, { message: Schema.Unknown, reply: Schema.Number })
        assert.strictEqual(yield* actorError(wrong.ask({ op: "add", n: "1" })), "MessageError:Schema")
        yield* wrong.tell({ op: "steal" })
        assert.deepInclude(yield* actor.stats, { rejected: 2, received: 0, processed: 0 })
        assert.strictEqual(net.sent.deliverFailures, 1)
      }))

    it.scoped("a reply that does not match the ref's reply schema is a Schema error", () =>
      Effect.gen(function*() {
        const { a, b } = yield* pair
        yield* b.registry.spawn("svc", counter())
        const wrong = yield* a.registry.ref(`${b.id}/svc`, { message: Command, reply: Schema.String })
        assert.strictEqual(yield* actorError(wrong.ask(get)), "MessageError:Schema")
      }))

    it.scoped("a failing remote actor answers Remote; missing or stopped, NotFound; full, MailboxFull", () =>
      Effect.gen(function*() {
        const { a, b } = yield* pair
        const gate = yield* Deferred.make<void>()
        const actor = yield* b.registry.spawn("svc", counter({ supervision: "stop", gate, mailbox: { capacity: 1, overflow: "reject" } }))
        const remote = yield* a.registry.ref(`${b.id}/svc`, CounterSchemas)
        const missing = yield* a.registry.ref(`${b.id}/nobody`, CounterSchemas)
        assert.strictEqual(yield* actorError(missing.ask(get)), "ActorError:NotFound")
        yield* remote.tell(wait)
        yield* busy(actor)
        yield* remote.tell(add(1))
        assert.strictEqual(yield* actorError(remote.ask(add(1))), "ActorError:MailboxFull")
        yield* release(actor, gate)
        assert.strictEqual(yield* remote.ask(get), 1)
        assert.strictEqual(yield* actorError(remote.ask(fail)), "MessageError:Remote")
        assert.strictEqual(yield* actorError(remote.ask(get)), "ActorError:NotFound")
      }))

    it.scoped("a remote ask times out like a local one", () =>
      Effect.gen(function*() {
        const { a, b } = yield* pair
        yield* b.registry.spawn("stuck", counter())
        const remote = yield* a.registry.ref(`${b.id}/stuck`, CounterSchemas)
        const fiber = yield* Effect.fork(actorError(remote.ask(wait, { timeout: "2 seconds" })))
        yield* TestClock.adjust("2 seconds")
        assert.strictEqual(yield* Fiber.join(fiber), "MessageError:Timeout")
      }))

    it.scoped("hostile bodies get a typed answer or a counted drop, never a defect", () =>
      Effect.gen(function*() {
        const { a, b } = yield* pair
        const actor = yield* b.registry.spawn("svc", counter())
        const bodies = FastCheck.sample(FastCheck.anything({ withNullPrototype: true, withObjectString: true }), { numRuns: 300, seed: 42 })
        let rejected = 0
        for (const body of bodies) {
          const exit = yield* Effect.exit(a.messages.ask(b.id, "svc", body))
          if (Exit.isSuccess(exit)) continue
          const error = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
          assert.isTrue(Option.isSome(error) && error.value.reason === "Schema", "a typed Schema failure")
          rejected++
          yield* a.messages.tell(b.id, "svc", body)
        }
        assert.isAbove(rejected, 0)
        assert.strictEqual((yield* actor.stats).rejected, rejected * 2)
        assert.strictEqual((yield* actor.stats).state, "running")
      }))
  })

  describe("over the real message layer (TransportMemory, LinkPlain, Messages)", () => {
    const realNode = (network: TransportMemory.MemoryNetwork, seed: number) =>
      Effect.gen(function*() {
        const stack = Actor.layer.pipe(
          Layer.provideMerge(messagesLayer),
          Layer.provideMerge(LinkPlain.layer),
          Layer.provideMerge(TransportMemory.layer(network)),
          Layer.provideMerge(Layer.merge(limitsLayer(), Identity.layer(Identity.generate(new Uint8Array(32).fill(seed)))))
        )
        const context = yield* Layer.build(stack)
        return {
          registry: Context.get(context, Actor.Registry),
          messages: Context.get(context, Messages),
          address: Context.get(context, Transport).address
        }
      })

    it.scoped("a remote actor answers tells and asks, refuses bad bodies and full mailboxes, and disappears when stopped", () =>
      Effect.gen(function*() {
        const network = yield* TransportMemory.makeNetwork()
        const a = yield* realNode(network, 1)
        const b = yield* realNode(network, 2)
        const peer = yield* a.messages.connect(b.address)
        assert.strictEqual(peer, b.messages.local)
        const gate = yield* Deferred.make<void>()
        const actor = yield* b.registry.spawn("svc/counter", counter({ gate, supervision: "stop", mailbox: { capacity: 1, overflow: "reject" } }))
        const remote = yield* a.registry.ref({ node: peer, path: "svc/counter" }, CounterSchemas)
        yield* remote.tell(add(2))
        yield* until(Effect.map(actor.stats, (stats) => stats.processed === 1))
        assert.strictEqual(yield* remote.ask(add(3)), 5)
        const wrong = yield* a.registry.ref({ node: peer, path: "svc/counter" }, { message: Schema.String, reply: Schema.Number })
        assert.strictEqual(yield* actorError(wrong.ask("nope")), "MessageError:Schema")
        yield* remote.tell(wait)
        yield* until(Effect.map(actor.stats, (stats) => stats.processed === 3))
        yield* remote.tell(add(1))
        yield* until(Effect.map(actor.stats, (stats) => stats.mailboxSize === 1))
        assert.strictEqual(yield* actorError(remote.ask(add(1))), "ActorError:MailboxFull")
        yield* release(actor, gate)
        assert.strictEqual(yield* remote.ask(get), 6)
        assert.strictEqual(yield* actorError(remote.ask(fail)), "MessageError:Remote")
        assert.strictEqual(yield* actorError(remote.ask(get)), "ActorError:NotFound")
        assert.deepInclude(yield* actor.stats, { rejected: 1, dropped: 1, failures: 1, state: "stopped" })
        assert.strictEqual((yield* b.messages.stats).actorsAttached, 0)
      }))
  })

  const layerNet = makeNet()
  it.scoped("Actor.spawn and Actor.ref work through the layer", () =>
    Effect.gen(function*() {
      const net = layerNet
      const id = nodeId(3)
      const actor = yield* Actor.spawn("counter", counter())
      const ref = yield* Actor.ref({ node: id, path: "counter" }, CounterSchemas)
      yield* ref.tell(add(2))
      assert.strictEqual(yield* actor.ask(get), 2)
      assert.strictEqual(net.sent.count, 0)
    }).pipe(
      Effect.provide(Actor.layer),
      Effect.provideService(Messages, fakeMessages(layerNet, nodeId(3))),
      Effect.provideService(Limits, defaults)
    ))
})
