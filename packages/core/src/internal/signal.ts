/**
 * A wake-up for fibers that wait for work (a delivery fiber, a sender loop, writers waiting for room).
 * `wait(seen)` returns at once if `notify` ran since `seen()` was read, so a notification is never
 * lost, even one that lands on a waiter a finished race abandoned.
 * `notify` is plain code, callable from the per-cell path.
 */
import { Effect } from "effect"

/** A lossless wake-up signal. */
export interface Signal {
  readonly notify: () => void
  readonly seen: () => number
  readonly wait: (seen: number) => Effect.Effect<void>
}

/** Creates a signal; any number of fibers may wait on it at once. */
export const make = (): Signal => {
  let count = 0
  let waiters: Array<() => void> = []
  return {
    seen: () => count,
    notify: (): void => {
      count++
      const woken = waiters
      waiters = []
      for (const wake of woken) wake()
    },
    wait: (seen: number) =>
      Effect.async<void>((resume) => {
        if (count !== seen) return resume(Effect.void)
        const wake = () => resume(Effect.void)
        waiters.push(wake)
        return Effect.sync(() => {
          waiters = waiters.filter((waiter) => waiter !== wake)
        })
      })
  }
}
