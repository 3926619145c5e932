/**
 * Round-trip helper for the session benches: reads a session's frames (with `receive`, as a node's
 * message layer does) and returns an effect that completes on the next one (an echo), counting echoes
 * that land before anyone waits.
 */
import type { Link } from "@weft/core"
import { Effect } from "effect"

/** Consumes the session's frames (in the scope) and returns "wait for the next frame". */
export const answers = (session: Link.Session) =>
  Effect.gen(function*() {
    // An echo may land before anyone waits (the fiber can yield between send and wait): count it.
    let unclaimed = 0
    let waiter: (() => void) | undefined
    yield* Effect.forkScoped(session.receive(() => {
      unclaimed++
      if (waiter === undefined) return
      const wake = waiter
      waiter = undefined
      unclaimed--
      wake()
    }))
    return Effect.async<void>((resume) => {
      if (unclaimed > 0) {
        unclaimed--
        return resume(Effect.void)
      }
      waiter = () => resume(Effect.void)
    })
  })
