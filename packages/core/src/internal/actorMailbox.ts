/**
 * The bounded mailbox of one actor: a plain ring of letters with one waiting taker (the actor's
 * fiber). Offering is a synchronous callback, so a local tell costs no fiber and no Effect beyond
 * the caller's own; the overflow strategy decides which letter is lost when it is full.
 */
import { Chunk, Effect, MutableQueue } from "effect"

/** What a full mailbox does with one more letter. */
export type Overflow = "dropNewest" | "dropOldest" | "reject"

/** A bounded single-consumer mailbox. */
export interface Mailbox<A> {
  readonly size: () => number
  /**
   * Offers one letter. Returns `undefined` when it was kept; otherwise the letter that was lost:
   * the offered one itself (dropNewest, reject) or the evicted oldest one (dropOldest).
   */
  readonly offer: (letter: A) => A | undefined
  /** Completes once the mailbox holds a letter (one waiter at a time). */
  readonly ready: Effect.Effect<void>
  /** Takes the oldest letter, if any. */
  readonly poll: () => A | undefined
  /** Empties the mailbox, returning what was in it, oldest first. */
  readonly drain: () => ReadonlyArray<A>
}

/** Makes a mailbox holding at most `capacity` letters. */
export const make = <A>(capacity: number, overflow: Overflow): Mailbox<A> => {
  const queue = MutableQueue.bounded<A>(capacity)
  let waiter: ((effect: Effect.Effect<void>) => void) | undefined

  // The letter stays queued until the taker polls it: a taker interrupted after waking loses nothing.
  const wake = () => {
    if (waiter === undefined) return
    const resume = waiter
    waiter = undefined
    resume(Effect.void)
  }

  const offer = (letter: A): A | undefined => {
    if (MutableQueue.offer(queue, letter)) {
      wake()
      return undefined
    }
    if (overflow !== "dropOldest") return letter
    const oldest = MutableQueue.poll(queue, MutableQueue.EmptyMutableQueue)
    MutableQueue.offer(queue, letter)
    return oldest === MutableQueue.EmptyMutableQueue ? undefined : oldest
  }

  const ready = Effect.async<void>((resume) => {
    if (!MutableQueue.isEmpty(queue)) return resume(Effect.void)
    waiter = resume
    return Effect.sync(() => {
      if (waiter === resume) waiter = undefined
    })
  })

  const poll = (): A | undefined => {
    const letter = MutableQueue.poll(queue, MutableQueue.EmptyMutableQueue)
    return letter === MutableQueue.EmptyMutableQueue ? undefined : letter
  }

  return {
    size: () => MutableQueue.length(queue),
    offer,
    ready,
    poll,
    drain: () => Chunk.toReadonlyArray(MutableQueue.pollUpTo(queue, Number.POSITIVE_INFINITY))
  }
}
