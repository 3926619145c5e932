/**
 * Where a raw link session's inbound frames go: its bounded inbox (read through `Session.frames`), or,
 * once a layer above took them with `Session.receive`, straight to that layer's callback on the per-cell
 * path (the stream layer: no queue, no fiber wake-up per frame). Shared by `LinkPlain` and `LinkSecure`.
 */
import { Chunk, Deferred, Effect, Mailbox } from "effect"

/** A session's inbound side. */
export interface Inbound {
  readonly inbox: Mailbox.Mailbox<Uint8Array>
  readonly closedSignal: Deferred.Deferred<void>
  /** Set while a `receive` consumer runs. */
  handler: ((frame: Uint8Array) => void) | undefined
}

/** Hands one frame up; false when the inbox was full (the frame is dropped, the caller counts it). */
export const deliver = (inbound: Inbound, frame: Uint8Array): boolean => {
  const handler = inbound.handler
  if (handler === undefined) return inbound.inbox.unsafeOffer(frame)
  handler(frame)
  return true
}

/**
 * `Session.receive`: frames already queued go first, then every new one, until the session closes.
 * A second consumer is a defect of the build (a session has one reader).
 */
export const receive = (inbound: Inbound) => (onFrame: (frame: Uint8Array) => void): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (inbound.handler !== undefined) return Effect.dieMessage("Session.receive: the session already has a reader")
    return Effect.flatMap(inbound.inbox.clear, (queued) => {
      for (const frame of Chunk.toReadonlyArray(queued)) onFrame(frame)
      inbound.handler = onFrame
      return Effect.ensuring(
        Deferred.await(inbound.closedSignal),
        Effect.sync(() => {
          inbound.handler = undefined
        })
      )
    })
  })
