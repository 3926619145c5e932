/**
 * Runs an Effect program in virtual time, deterministically: every fiber runs on one controlled
 * scheduler, every `Effect.sleep` (and timeout, schedule, `Clock` read) goes to a virtual clock, and
 * randomness comes from a seeded `Random`. The driver drains the scheduler until no fiber can make
 * progress, then jumps the clock to the next sleeper — so a simulated minute of a hundred nodes costs
 * only the CPU their code needs, and the same seed replays the same run.
 *
 * Why not `TestClock`: its `adjust` detects quiescence by polling fiber states with real `setTimeout(0)`
 * timers and re-sorts every pending sleep on each wake, which costs a millisecond or more per wake; a
 * multi-node simulation wakes hundreds of thousands of times. Here quiescence is exact (the scheduler's
 * queue is empty) and the sleepers sit in a binary heap.
 */
import type { Duration, Exit } from "effect"
import { Clock, Effect, Random, Scheduler } from "effect"

/** Options of a simulated run. */
export interface Options {
  /** Seeds `Random` for the whole program. */
  readonly seed: number
  /** Virtual time after which the run is abandoned as runaway (default one simulated day). */
  readonly virtualTimeMsMax?: number | undefined
}

interface Sleeper {
  readonly dueMs: number
  readonly order: number
  resume: (() => void) | undefined
}

/** A virtual clock: time moves only when the driver moves it. */
export class VirtualClock implements Clock.Clock {
  readonly [Clock.ClockTypeId]: Clock.ClockTypeId = Clock.ClockTypeId
  private nowMs = 0
  private order = 0
  private readonly heap: Array<Sleeper> = []

  unsafeCurrentTimeMillis(): number {
    return this.nowMs
  }
  unsafeCurrentTimeNanos(): bigint {
    return BigInt(this.nowMs) * 1_000_000n
  }
  get currentTimeMillis(): Effect.Effect<number> {
    return Effect.sync(() => this.nowMs)
  }
  get currentTimeNanos(): Effect.Effect<bigint> {
    return Effect.sync(() => this.unsafeCurrentTimeNanos())
  }
  sleep(duration: Duration.Duration): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      const millis = duration.value._tag === "Infinity" ? Number.POSITIVE_INFINITY : Math.max(0, toMillis(duration))
      const sleeper: Sleeper = { dueMs: this.nowMs + millis, order: this.order++, resume: () => resume(Effect.void) }
      this.push(sleeper)
      return Effect.sync(() => {
        sleeper.resume = undefined
      })
    })
  }

  /** Moves time to the earliest pending sleeper and wakes every sleeper due then; false if none. */
  advance(): boolean {
    const first = this.popLive()
    if (first === undefined || first.dueMs === Number.POSITIVE_INFINITY) return false
    this.nowMs = Math.max(this.nowMs, first.dueMs)
    const due: Array<Sleeper> = [first]
    while (this.heap.length > 0 && this.heap[0]!.dueMs <= this.nowMs) due.push(this.pop()!)
    for (const sleeper of due) sleeper.resume?.()
    return true
  }

  private popLive(): Sleeper | undefined {
    while (this.heap.length > 0) {
      const sleeper = this.pop()!
      if (sleeper.resume !== undefined) return sleeper
    }
    return undefined
  }

  private push(sleeper: Sleeper): void {
    const heap = this.heap
    heap.push(sleeper)
    let index = heap.length - 1
    while (index > 0) {
      const parent = (index - 1) >> 1
      if (!before(heap[index]!, heap[parent]!)) break
      ;[heap[index], heap[parent]] = [heap[parent]!, heap[index]!]
      index = parent
    }
  }

  private pop(): Sleeper | undefined {
    const heap = this.heap
    const top = heap[0]
    const last = heap.pop()
    if (heap.length > 0 && last !== undefined) {
      heap[0] = last
      let index = 0
      for (;;) {
        const left = index * 2 + 1
        const right = left + 1
        let smallest = index
        if (left < heap.length && before(heap[left]!, heap[smallest]!)) smallest = left
        if (right < heap.length && before(heap[right]!, heap[smallest]!)) smallest = right
        if (smallest === index) break
        ;[heap[index], heap[smallest]] = [heap[smallest]!, heap[index]!]
        index = smallest
      }
    }
    return top
  }
}

const before = (a: Sleeper, b: Sleeper): boolean => a.dueMs < b.dueMs || (a.dueMs === b.dueMs && a.order < b.order)

const toMillis = (duration: Duration.Duration): number => {
  const value = duration.value
  switch (value._tag) {
    case "Millis":
      return value.millis
    case "Nanos":
      return Number(value.nanos / 1_000_000n)
    default:
      return Number.POSITIVE_INFINITY
  }
}

/** Thrown when no fiber can make progress and none is sleeping: the program waits for something that never comes. */
export class Deadlock extends Error {
  constructor(readonly atMs: number) {
    super(`simulation deadlocked at virtual ${atMs} ms: no fiber can run and none is sleeping`)
  }
}

// Longest stretch of real time the driver runs without yielding to the host's event loop.
const realTimeSliceMs = 50

/** Runs `program` to completion in virtual time and returns its exit. */
export const run = async <A, E>(program: Effect.Effect<A, E>, options: Options): Promise<Exit.Exit<A, E>> => {
  const clock = new VirtualClock()
  const scheduler = new Scheduler.ControlledScheduler()
  const fiber = Effect.runFork(
    program.pipe(
      Effect.withRandom(Random.make(options.seed)),
      Effect.withClock(clock),
      Effect.withScheduler(scheduler)
    )
  )
  const limitMs = options.virtualTimeMsMax ?? 24 * 60 * 60 * 1000
  let idleSpins = 0
  let yieldedAtMs = performance.now()
  for (;;) {
    while (scheduler.tasks.buckets.length > 0) scheduler.step()
    // The host process has its own work (a test runner's heartbeats): let it breathe now and then.
    if (performance.now() - yieldedAtMs > realTimeSliceMs) {
      await new Promise((resolve) => setImmediate(resolve))
      yieldedAtMs = performance.now()
    }
    const exit = fiber.unsafePoll()
    if (exit !== null) return exit
    if (clock.unsafeCurrentTimeMillis() > limitMs) {
      fiber.unsafeInterruptAsFork(fiber.id())
      continue
    }
    // Effect internals that captured another scheduler (runSync's, for one) resume on microtasks:
    // let them run before time moves, so the simulation does not outrun them.
    await undefined
    if (scheduler.tasks.buckets.length > 0) continue
    if (clock.advance()) {
      idleSpins = 0
      continue
    }
    // Nothing runnable and nothing sleeping: give real I/O callbacks (if any) a chance before giving up.
    await new Promise((resolve) => setImmediate(resolve))
    if (++idleSpins > 100) throw new Deadlock(clock.unsafeCurrentTimeMillis())
  }
}
