/**
 * Case 4: a counter actor spawned on a node.
 * - tells/s: `ops` tells, measured until the actor has processed all of them (a closing ask, which
 *   the mailbox orders after them), against a bounded Effect `Queue` offered by one fiber and drained
 *   by another;
 * - asks/s, sequential, against a `Deferred` round trip through a serving fiber;
 * - asks/s to the same actor on a peer over the memory transport (no baseline).
 * Both mailboxes hold `mailboxCapacity` letters; a full actor mailbox rejects a tell, and the
 * producer yields and retries, as a full `Queue` makes `offer` wait.
 */
import type { Scope } from "effect"
import { Deferred, Effect, Either, Fiber, Queue, Schema } from "effect"
import * as Actor from "../src/Actor.js"
import type { TwoNodes } from "./fixtures.js"
import { batch, sequential } from "./fixtures.js"
import type { Case } from "./harness.js"

/** Letters either mailbox holds. */
const mailboxCapacity = 1024

const schemas = { message: Schema.Number, reply: Schema.Number }

/** Adds each message to its total and answers the new total. */
const counter: Actor.Behavior<number, number, number, never> = {
  ...schemas,
  initial: Effect.succeed(0),
  receive: (total, n) => Effect.succeed([total + n, total + n] as const),
  mailbox: { capacity: mailboxCapacity, overflow: "reject" },
  supervision: "resume"
}

const mismatch = (what: string, expected: number, got: number) => Effect.dieMessage(`${what}: expected ${expected}, got ${got}`)

const tellOne = (actor: Actor.ActorRef<number, number>): Effect.Effect<void, unknown> =>
  Effect.either(actor.tell(1)).pipe(
    Effect.flatMap((result) => {
      if (Either.isRight(result)) return Effect.void
      const error = result.left
      return error._tag === "ActorError" && error.reason === "MailboxFull"
        ? Effect.zipRight(Effect.yieldNow(), tellOne(actor))
        : Effect.fail(error)
    })
  )

// The closing ask(0) is answered after every tell before it: the batch ends when all were processed.
const tells = (actor: Actor.ActorRef<number, number>, ops: number) =>
  Effect.gen(function*() {
    const before = yield* actor.ask(0)
    yield* sequential(tellOne(actor), ops)
    const after = yield* actor.ask(0)
    if (after - before !== ops) return yield* mismatch("actor total", before + ops, after)
  })

const asks = (actor: Actor.ActorRef<number, number>, ops: number) =>
  Effect.gen(function*() {
    const before = yield* actor.ask(0)
    yield* sequential(actor.ask(1), ops)
    const after = yield* actor.ask(0)
    if (after - before !== ops) return yield* mismatch("actor total", before + ops, after)
  })

const queueTells = (ops: number) =>
  Effect.gen(function*() {
    const queue = yield* Queue.bounded<number>(mailboxCapacity)
    const consumer = yield* Effect.fork(Effect.gen(function*() {
      let total = 0
      for (let i = 0; i < ops; i++) total += yield* Queue.take(queue)
      return total
    }))
    yield* sequential(Queue.offer(queue, 1), ops)
    const total = yield* Fiber.join(consumer)
    if (total !== ops) return yield* mismatch("queue total", ops, total)
  })

type Letter = readonly [n: number, reply: Deferred.Deferred<number>]

/** A fiber answering each letter with the running total, for the life of the scope. */
const deferredServer: Effect.Effect<Queue.Queue<Letter>, never, Scope.Scope> = Effect.gen(function*() {
  const queue = yield* Queue.bounded<Letter>(mailboxCapacity)
  let total = 0
  yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(queue), ([n, reply]) => Deferred.succeed(reply, total += n))))
  return queue
})

const deferredAsk = (queue: Queue.Queue<Letter>) =>
  Effect.gen(function*() {
    const reply = yield* Deferred.make<number>()
    yield* Queue.offer(queue, [1, reply])
    return yield* Deferred.await(reply)
  })

/** The actor cases over two running nodes; spawns the actors and the baseline server in the scope. */
export const cases = (nodes: TwoNodes, quick: boolean): Effect.Effect<ReadonlyArray<Case>, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const local = yield* Actor.spawn("bench/counter", counter).pipe(Effect.provide(nodes.a))
    yield* Actor.spawn("bench/counter", counter).pipe(Effect.provide(nodes.b))
    const remote = yield* Actor.ref({ node: nodes.idB, path: "bench/counter" }, schemas).pipe(Effect.provide(nodes.a))
    const server = yield* deferredServer
    return [
      {
        bench: "actor tell (local)",
        metric: "actor_tell_local",
        unit: "msgs/s",
        ops: quick ? 20_000 : 200_000,
        subject: { name: "Actor tell", run: (ops) => batch(tells(local, ops)) },
        baseline: { name: "Queue offer/take", run: (ops) => batch(queueTells(ops)) }
      },
      {
        bench: "actor ask (local), sequential",
        metric: "actor_ask_local_seq",
        unit: "asks/s",
        ops: quick ? 5_000 : 20_000,
        subject: { name: "Actor ask", run: (ops) => batch(asks(local, ops)) },
        baseline: { name: "Deferred via fiber", run: (ops) => batch(sequential(deferredAsk(server), ops)) }
      },
      {
        bench: "actor ask (peer, memory transport), sequential",
        metric: "actor_ask_memory_seq",
        unit: "asks/s",
        ops: quick ? 500 : 3_000,
        subject: { name: "Actor ask", run: (ops) => batch(asks(remote, ops)) }
      }
    ]
  })
