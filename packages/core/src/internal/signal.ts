/**
 * A wake-up for a delivery fiber. `wait(seen)` returns at once if `notify` ran since `seen()` was
 * read, so a notification is never lost, even one that lands on a waiter a finished race abandoned.
 * `notify` is plain code, callable from the per-cell path.
 */
import { Effect } from "effect"

/** A lossless wake-up signal. */
export interface Signal {
  readonly notify: () => void
  readonly seen: () => number
  readonly wait: (seen: number) => Effect.Effect<void>
}

/** Creates a signal. */
export const make = (): Signal => {
  let count = 0
  let waiter: (() => void) | undefined
  const notify = (): void => {
    count++
    const w = waiter
    waiter = undefined
    w?.()
  }
  const wait = (seen: number) =>
    Effect.async<void>((callback) => {
      if (count !== seen) return callback(Effect.void)
      const mine = () => callback(Effect.void)
      waiter = mine
      return Effect.sync(() => {
        if (waiter === mine) waiter = undefined
      })
    })
  return { notify, seen: () => count, wait }
}
