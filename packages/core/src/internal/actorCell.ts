/**
 * One running actor: its state, its mailbox, the fiber that drains the mailbox one letter at a time,
 * supervision, and the edge where remote deliveries are decoded. `Actor.ts` builds the public API on
 * top of this.
 */
import { Cause, Clock, Duration, Effect, Either, Exit, FiberRef, Option, Schema } from "effect"
import type { ActorAddress, Behavior, ReceiveContext, Stats } from "../Actor.js"
import type { Values } from "../Limits.js"
import type { ActorDelivery } from "../Messages.js"
import type { NodeId } from "../NodeId.js"
import { ActorError, MessageError } from "../WeftError.js"
import * as Mailbox from "./actorMailbox.js"

/** How a letter's sender is answered (present only for an ask). */
export type Replier<Out> = (result: Exit.Exit<Out, ActorError | MessageError>) => Effect.Effect<void>

/** One message in a mailbox. */
export interface Letter<In, Out> {
  readonly message: In
  readonly sender: NodeId
  readonly reply: Replier<Out> | undefined
}

/** A running actor. */
export interface Cell<In, Out> {
  readonly address: ActorAddress
  readonly message: Schema.Schema<In, any>
  readonly reply: Schema.Schema<Out, any>
  /** Puts a letter in the mailbox (no encoding); fails when stopped or when the mailbox refuses it. */
  readonly enqueue: (letter: Letter<In, Out>) => Effect.Effect<void, ActorError>
  /** The `Messages.attach` callback: decodes a remote body at the edge, then enqueues it. */
  readonly deliver: (delivery: ActorDelivery) => Effect.Effect<void, MessageError>
  /** Processes the mailbox until the actor stops (fork it). */
  readonly run: Effect.Effect<void>
  readonly stop: Effect.Effect<void>
  readonly stats: Effect.Effect<Stats>
}

/** What a cell needs besides its behavior. */
export interface CellOptions<S> {
  readonly address: ActorAddress
  readonly state: S
  readonly limits: Values
  /** Detaches from the message layer and frees the path; run once, when the actor stops. */
  readonly onStop: Effect.Effect<void>
}

/** The error a remote sender sees for an actor-side refusal. */
export const toMessageError = (error: ActorError | MessageError): MessageError => {
  if (error._tag === "MessageError") return error
  if (error.reason === "MailboxFull") return new MessageError({ reason: "MailboxFull", detail: error.detail })
  if (error.reason === "Stopped" || error.reason === "NotFound") {
    return new MessageError({ reason: "NoHandler", detail: error.detail })
  }
  return new MessageError({ reason: "Remote", detail: error.detail })
}

const describe = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  if (Option.isNone(failure)) return Cause.isInterruptedOnly(cause) ? "receive was interrupted" : "receive died"
  const error = failure.value
  const tag = typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : undefined
  return tag === undefined ? "receive failed" : `receive failed: ${tag}`
}

/** Answers a remote ask through the message layer, encoding the reply with the behavior's schema. */
const remoteReplier = <Out>(reply: NonNullable<ActorDelivery["reply"]>, schema: Schema.Schema<Out, any>): Replier<Out> => (result) => {
  if (Exit.isFailure(result)) {
    const error = Cause.failureOption(result.cause)
    return reply({ ok: false, error: Option.isSome(error) ? toMessageError(error.value) : new MessageError({ reason: "Remote" }) })
  }
  const encoded = Schema.encodeEither(schema)(result.value)
  return Either.isRight(encoded)
    ? reply({ ok: true, value: encoded.right })
    : reply({ ok: false, error: new MessageError({ reason: "Schema", detail: "the actor's reply does not match its reply schema" }) })
}

/** Builds a cell; nothing runs until `run` is forked. */
export const make = <S, In, Out, E>(behavior: Behavior<S, In, Out, E>, options: CellOptions<S>): Cell<In, Out> =>
  new CellImpl(behavior, options)

class CellImpl<S, In, Out, E> implements Cell<In, Out> {
  readonly address: ActorAddress
  readonly message: Schema.Schema<In, any>
  readonly reply: Schema.Schema<Out, any>
  private readonly mailbox: Mailbox.Mailbox<Letter<In, Out>>
  private readonly decodeMessage: (body: unknown) => Either.Either<In, unknown>
  private readonly counts = { received: 0, processed: 0, dropped: 0, rejected: 0, failures: 0, restarts: 0 }
  private state: S
  private stopped = false
  /** Set when the current wake-up must hand control back (mailbox empty, or receive interrupted). */
  private batchEnded = false
  /** The letter whose `receive` is running. */
  private current: Letter<In, Out> | undefined
  /** The context of the last letter, reused while the sender stays the same. */
  private context: ReceiveContext | undefined
  /** Times of the restarts inside the current window; never longer than actorRestartsMax. */
  private restartTimes: Array<number> = []

  constructor(private readonly behavior: Behavior<S, In, Out, E>, private readonly options: CellOptions<S>) {
    this.address = options.address
    this.message = behavior.message
    this.reply = behavior.reply
    this.mailbox = Mailbox.make(behavior.mailbox.capacity, behavior.mailbox.overflow)
    this.decodeMessage = Schema.decodeUnknownEither(behavior.message)
    this.state = options.state
  }

  private stoppedError() {
    return new ActorError({ reason: "Stopped", detail: `actor ${this.address.path} is stopped` })
  }

  private fullError() {
    return new ActorError({ reason: "MailboxFull", detail: `mailbox of ${this.address.path} is full` })
  }

  private log(message: string, cause?: Cause.Cause<unknown>) {
    const annotated = (effect: Effect.Effect<void>) => Effect.annotateLogs(effect, { component: "actor", path: this.address.path })
    // A peer can make receive fail at will, so failures log at debug level; stops are rare and worth a warning.
    return annotated(cause === undefined ? Effect.logWarning(message) : Effect.logDebug(message, cause))
  }

  readonly enqueue = (letter: Letter<In, Out>): Effect.Effect<void, ActorError> => Effect.suspend(() => this.offer(letter))

  private offer(letter: Letter<In, Out>): Effect.Effect<void, ActorError> {
    if (this.stopped) return Effect.fail(this.stoppedError())
    this.counts.received++
    const lost = this.mailbox.offer(letter)
    if (lost === undefined) return Effect.void
    this.counts.dropped++
    if (lost !== letter) return lost.reply === undefined ? Effect.void : lost.reply(Exit.fail(this.fullError()))
    // An ask is never dropped silently: its sender would only learn of it at its timeout.
    const silent = this.behavior.mailbox.overflow === "dropNewest" && letter.reply === undefined
    return silent ? Effect.void : Effect.fail(this.fullError())
  }

  readonly deliver = (delivery: ActorDelivery): Effect.Effect<void, MessageError> =>
    Effect.suspend(() => {
      const decoded = this.decodeMessage(delivery.body)
      if (Either.isLeft(decoded)) {
        this.counts.rejected++
        return Effect.fail(new MessageError({ reason: "Schema", detail: `body does not match the message schema of ${this.address.path}` }))
      }
      const reply = delivery.reply === undefined ? undefined : remoteReplier(delivery.reply, this.behavior.reply)
      // A refusal fails the delivery: the message layer counts it and, for an ask, answers with it.
      return Effect.mapError(this.enqueue({ message: decoded.right, sender: delivery.peer, reply }), toMessageError)
    })

  readonly stop: Effect.Effect<void> = Effect.suspend(() => {
    if (this.stopped) return Effect.void
    this.stopped = true
    const pending = this.mailbox.drain()
    return this.options.onStop.pipe(
      Effect.zipRight(Effect.forEach(pending, (letter) => letter.reply?.(Exit.fail(this.stoppedError())) ?? Effect.void, { discard: true }))
    )
  })

  private readonly restart: Effect.Effect<void> = Effect.suspend(() => {
    const windowMillis = Duration.toMillis(this.options.limits.actorRestartWindow)
    return Effect.flatMap(Clock.currentTimeMillis, (now) => {
      this.restartTimes = this.restartTimes.filter((time) => now - time < windowMillis)
      if (this.restartTimes.length >= this.options.limits.actorRestartsMax) {
        return Effect.zipRight(this.log("actor stopped: too many restarts"), this.stop)
      }
      this.restartTimes.push(now)
      this.counts.restarts++
      return Effect.flatMap(Effect.exit(this.behavior.initial), (initial) => {
        if (Exit.isFailure(initial)) return Effect.zipRight(this.log("actor stopped: initial died"), this.stop)
        this.state = initial.value
        return Effect.void
      })
    })
  })

  private supervise(cause: Cause.Cause<unknown>): Effect.Effect<void> {
    this.counts.failures++
    const logged = this.log("actor failed", cause)
    switch (this.behavior.supervision) {
      case "resume":
        return logged
      case "stop":
        return Effect.zipRight(logged, this.stop)
      case "restart":
        return Effect.zipRight(logged, this.restart)
    }
  }

  /** What a failed or interrupted `receive` turns into for the letter's sender and for supervision. */
  private onReceiveFailure(letter: Letter<In, Out>, cause: Cause.Cause<unknown>): Effect.Effect<void> {
    if (Cause.isInterruptedOnly(cause)) {
      // The fiber may be going away: end the batch so the mask can let the interruption in.
      this.batchEnded = true
      return letter.reply === undefined ? Effect.void : letter.reply(Exit.fail(this.stoppedError()))
    }
    if (letter.reply === undefined) return this.supervise(cause)
    const failed = new MessageError({ reason: "Remote", detail: describe(cause) })
    return Effect.zipRight(letter.reply(Exit.fail(failed)), Effect.suspend(() => this.supervise(cause)))
  }

  /**
   * Takes and handles the oldest letter. Runs uninterruptibly but for `receive` itself, so that a letter
   * taken from the mailbox is always answered: an interruption (the scope closing) answers it with Stopped.
   */
  private handleNext(restore: <A, E2>(effect: Effect.Effect<A, E2>) => Effect.Effect<A, E2>): Effect.Effect<void> {
    const letter = this.stopped ? undefined : this.mailbox.poll()
    if (letter === undefined) {
      this.batchEnded = true
      return Effect.void
    }
    this.counts.processed++
    this.current = letter
    const context = this.context?.sender === letter.sender ? this.context : (this.context = { self: this.address, sender: letter.sender })
    return Effect.matchCauseEffect(restore(this.behavior.receive(this.state, letter.message, context)), this.outcome)
  }

  // The handlers of `receive`'s outcome are made once per cell, not per letter: one letter runs at a time.
  private readonly outcome = {
    onSuccess: (result: readonly [Out, S]): Effect.Effect<void> => {
      const letter = this.current!
      this.current = undefined
      this.state = result[1]
      return letter.reply === undefined ? Effect.void : letter.reply(Exit.succeed(result[0]))
    },
    onFailure: (cause: Cause.Cause<unknown>): Effect.Effect<void> => {
      const letter = this.current!
      this.current = undefined
      return this.onReceiveFailure(letter, cause)
    }
  }

  /**
   * One wake-up: every letter waiting (and any arriving meanwhile) is handled in one uninterruptible
   * loop, with `receive` the only interruptible part. A letter is taken only while no interruption is
   * pending, so an interrupted actor leaves the rest queued for `stop` to answer.
   */
  private readonly step: Effect.Effect<void> = Effect.uninterruptibleMask((restore) => {
    const next = Effect.suspend(() => this.handleNext(restore))
    return Effect.flatMap(restore(this.mailbox.ready), () =>
      Effect.withFiberRuntime((fiber) => {
        this.batchEnded = false
        return Effect.whileLoop({
          while: () =>
            !this.batchEnded && !this.stopped && this.mailbox.size() > 0 &&
            Cause.isEmpty(fiber.getFiberRef(FiberRef.interruptedCause)),
          body: () => next,
          step: () => {}
        })
      }))
  })

  readonly run: Effect.Effect<void> = Effect.suspend(() =>
    Effect.whileLoop({ while: () => !this.stopped, body: () => this.step, step: () => {} })
  ).pipe(Effect.ensuring(Effect.suspend(() => this.stop)))

  readonly stats: Effect.Effect<Stats> = Effect.sync(() => ({
    ...this.counts,
    mailboxSize: this.mailbox.size(),
    state: this.stopped ? "stopped" as const : "running" as const
  }))
}

