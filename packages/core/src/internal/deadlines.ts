/**
 * The deadlines of requests in flight, swept by one fiber. A timer race per request (`timeoutFail`)
 * forks two fibers and arms a timer for every call; here a request only records when it falls due,
 * and a single fiber, started when there is something to wait for, sleeps on the Clock until the
 * earliest deadline and expires whatever is overdue. Sleeping on the Clock keeps `TestClock` and the
 * simulator's virtual time in charge.
 */
import type { Clock, Fiber } from "effect"
import { Duration, Effect } from "effect"

/** A set of keyed deadlines with one sweeping fiber. */
export interface Deadlines<K> {
  /** Sets `key` to fall due `millis` from now, replacing any deadline it had; a non-finite `millis` clears it. */
  readonly set: (key: K, millis: number) => void
  /** Forgets `key`'s deadline, if it has one. */
  readonly delete: (key: K) => void
  /** Forgets every deadline. */
  readonly clear: () => void
  /** How many deadlines are pending. */
  readonly size: () => number
}

/** What a `Deadlines` needs from its owner. */
export interface Options<K> {
  readonly clock: Clock.Clock
  /** Starts the sweeping fiber on the owner's runtime and in its scope (so it ends with the owner). */
  readonly fork: (effect: Effect.Effect<void>) => Fiber.RuntimeFiber<void, unknown>
  /** Handles one overdue key; its deadline is already forgotten. */
  readonly expire: (key: K) => Effect.Effect<void>
}

/** Makes an empty set of deadlines; no fiber runs until the first deadline is set. */
export const make = <K>(options: Options<K>): Deadlines<K> => {
  const { clock, expire, fork } = options
  const due = new Map<K, number>()
  let sweeper: Fiber.RuntimeFiber<void, unknown> | undefined
  // Each start makes a new generation; a replaced sweeper sees it is stale and ends.
  let generation = 0
  // When the sweeper will wake, while it sleeps; while it expires keys it rereads `due` before sleeping again.
  let wakeAt = Number.POSITIVE_INFINITY

  const earliest = (): number => {
    let at = Number.POSITIVE_INFINITY
    for (const time of due.values()) if (time < at) at = time
    return at
  }

  const expireOverdue = (): Effect.Effect<void> => {
    const now = clock.unsafeCurrentTimeMillis()
    const overdue: Array<K> = []
    for (const [key, time] of due) if (time <= now) overdue.push(key)
    for (const key of overdue) due.delete(key)
    return overdue.length === 0 ? Effect.void : Effect.forEach(overdue, expire, { discard: true })
  }

  const loop = (mine: number): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (mine !== generation) return Effect.void
      const at = earliest()
      if (at === Number.POSITIVE_INFINITY) return Effect.void
      wakeAt = at
      const wait = Math.max(0, at - clock.unsafeCurrentTimeMillis())
      return Effect.sleep(Duration.millis(wait)).pipe(
        Effect.zipRight(Effect.suspend(() => {
          if (mine !== generation) return Effect.void
          wakeAt = Number.NEGATIVE_INFINITY
          return expireOverdue()
        })),
        Effect.zipRight(loop(mine))
      )
    })

  const start = (): void => {
    const previous = sweeper
    const mine = ++generation
    wakeAt = Number.NEGATIVE_INFINITY
    sweeper = fork(Effect.onExit(loop(mine), () =>
      Effect.sync(() => {
        // Done, interrupted with its scope, or dead: whichever, the next `set` starts a new one.
        if (mine !== generation) return
        sweeper = undefined
        wakeAt = Number.POSITIVE_INFINITY
      })))
    // Only a sleeping sweeper is ever replaced, so interrupting it loses no expiry in progress.
    if (previous !== undefined) previous.unsafeInterruptAsFork(previous.id())
  }

  return {
    set: (key, millis) => {
      if (!Number.isFinite(millis)) {
        due.delete(key)
        return
      }
      const at = clock.unsafeCurrentTimeMillis() + millis
      due.set(key, at)
      // A sweeper that is expiring keys (wakeAt = -∞) will reread `due`; a sleeping one must wake earlier.
      if (sweeper === undefined || at < wakeAt) start()
    },
    delete: (key) => {
      due.delete(key)
    },
    clear: () => {
      due.clear()
    },
    size: () => due.size
  }
}
