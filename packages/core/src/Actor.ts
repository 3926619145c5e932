/**
 * Actors: handlers attached to an object instance (DESIGN.md, "Messages and calls"). An actor lives
 * at `nodeId/path`, owns its state, and drains a bounded mailbox one message at a time in its own
 * fiber, so its state is never touched concurrently. A failing actor is restarted, stopped or resumed
 * by its supervision policy; it never fails the scope that spawned it, nor the node.
 *
 * `spawn` starts one on this node; `ref` reaches one anywhere with the same `ActorRef` type. A ref to a
 * local actor with the actor's own schemas puts messages straight into its mailbox (no encoding); any
 * other ref goes through `Messages.tell` / `Messages.ask`, encoded with the ref's schemas and decoded
 * at the receiving edge with the actor's, so a local and a remote actor answer alike.
 *
 * Errors: a refused message is `ActorError("MailboxFull")`, an actor that is not there is
 * `ActorError("NotFound")` (`"Stopped"` through the handle `spawn` returned), whichever node it is on;
 * a `receive` that fails answers the ask with `MessageError("Remote")`; a body that does not match the
 * actor's schema is `MessageError("Schema")`; no reply in time is `MessageError("Timeout")`.
 */
import type { Duration } from "effect"
import { Context, Deferred, Effect, Either, ExecutionStrategy, Exit, Fiber, Layer, Schema, Scope } from "effect"
import type { Cell } from "./internal/actorCell.js"
import * as ActorCell from "./internal/actorCell.js"
import type { Overflow } from "./internal/actorMailbox.js"
import { Limits, defaults as limitDefaults } from "./Limits.js"
import type { Values } from "./Limits.js"
import { Messages } from "./Messages.js"
import * as NodeIdModule from "./NodeId.js"
import type { NodeId } from "./NodeId.js"
import { ActorError, MessageError } from "./WeftError.js"

export type { Overflow } from "./internal/actorMailbox.js"

/**
 * A mailbox's bound and what it does when full: `dropNewest` loses the incoming tell silently,
 * `dropOldest` evicts the oldest letter, `reject` fails the tell. Whatever the strategy, a lost ask
 * fails at once with `ActorError("MailboxFull")` rather than at its timeout. Every loss is counted.
 */
export interface MailboxOptions {
  /** Letters waiting at most (not counting the one being processed); a positive integer. */
  readonly capacity: number
  readonly overflow: Overflow
}

/**
 * What happens when `receive` fails or dies: `restart` re-runs `initial` (more than
 * `actorRestartsMax` restarts within `actorRestartWindow` stop the actor), `stop` stops it at the first
 * failure, `resume` keeps the state it had before the failing message.
 */
export type Supervision = "restart" | "stop" | "resume"

/** Where an actor lives; its text form is `nodeId/path`. */
export interface ActorAddress {
  readonly node: NodeId
  readonly path: string
}

/** What `receive` knows besides the message. */
export interface ReceiveContext {
  readonly self: ActorAddress
  /** The node that sent the message (this node for a local sender). */
  readonly sender: NodeId
}

/** An actor's definition. */
export interface Behavior<S, In, Out, E> {
  /** Decodes bodies arriving from the message layer, at the edge. */
  readonly message: Schema.Schema<In, any>
  /** Encodes replies to remote asks. */
  readonly reply: Schema.Schema<Out, any>
  /** The first state, and the state after a restart. */
  readonly initial: Effect.Effect<S>
  /** Handles one message: its reply (discarded for a tell) and the next state. */
  readonly receive: (state: S, message: In, context: ReceiveContext) => Effect.Effect<readonly [reply: Out, next: S], E>
  readonly mailbox: MailboxOptions
  readonly supervision: Supervision
}

/** The schemas a ref encodes messages and decodes replies with. */
export interface Schemas<In, Out> {
  readonly message: Schema.Schema<In, any>
  readonly reply: Schema.Schema<Out, any>
}

/** A way to reach an actor; the same type for an actor on this node and on a peer. */
export interface ActorRef<In, Out> {
  readonly address: ActorAddress
  /** Sends a message without waiting for it to be processed. */
  readonly tell: (message: In) => Effect.Effect<void, ActorError | MessageError>
  /** Sends a message and waits for the reply (`callTimeout` unless given). */
  readonly ask: (message: In, options?: { readonly timeout?: Duration.DurationInput | undefined }) => Effect.Effect<Out, ActorError | MessageError>
}

/** Counters of one actor. */
export interface Stats {
  /** Messages offered to the mailbox (local, or remote after decoding). */
  readonly received: number
  /** Messages handed to `receive`. */
  readonly processed: number
  /** Messages lost to a full mailbox (dropped, evicted or rejected). */
  readonly dropped: number
  /** Remote bodies that did not match the message schema. */
  readonly rejected: number
  /** `receive` calls that failed or died. */
  readonly failures: number
  readonly restarts: number
  readonly mailboxSize: number
  readonly state: "running" | "stopped"
}

/** The handle `spawn` returns: a ref that can also read the actor's counters and stop it. */
export interface LocalActor<In, Out> extends ActorRef<In, Out> {
  readonly stats: Effect.Effect<Stats>
  /** Stops the actor now (its scope closing does the same); idempotent. */
  readonly stop: Effect.Effect<void>
}

const segment = /^[a-z0-9._-]+$/
const dotsOnly = /^\.+$/

const badPath = (detail: string) => new ActorError({ reason: "BadPath", detail })

/**
 * Checks an actor path: `/`-separated segments of `[a-z0-9._-]`, none empty, none made of dots only,
 * at most `pathCharsMax` characters.
 */
export const checkPath = (path: string, pathCharsMax: number = limitDefaults.actorPathCharsMax): Either.Either<string, ActorError> => {
  if (path.length === 0 || path.length > pathCharsMax) return Either.left(badPath(`actor path must have 1 to ${pathCharsMax} characters`))
  const ok = path.split("/").every((part) => segment.test(part) && !dotsOnly.test(part))
  return ok ? Either.right(path) : Either.left(badPath(`not an actor path: ${JSON.stringify(path.slice(0, 80))}`))
}

/** The text form of an address, `nodeId/path`. */
export const formatAddress = (address: ActorAddress): string => `${address.node}/${address.path}`

/** Parses untrusted text as `nodeId/path`. */
export const parseAddress = (text: string, pathCharsMax: number = limitDefaults.actorPathCharsMax): Either.Either<ActorAddress, ActorError> => {
  const slash = text.indexOf("/")
  if (slash < 0) return Either.left(badPath("an actor address is nodeId/path"))
  const node = NodeIdModule.parse(text.slice(0, slash))
  if (Either.isLeft(node)) return Either.left(badPath(node.left.detail ?? "bad node ID"))
  return Either.map(checkPath(text.slice(slash + 1), pathCharsMax), (path) => ({ node: node.right, path }))
}

/** The node's actors. */
export class Registry extends Context.Tag("@weft/core/Actor")<Registry, {
  /** Spawns an actor on this node at `path` for the life of the scope. */
  readonly spawn: <S, In, Out, E>(path: string, behavior: Behavior<S, In, Out, E>) => Effect.Effect<LocalActor<In, Out>, ActorError, Scope.Scope>
  /** A ref to an actor anywhere; nothing is checked until a message is sent. */
  readonly ref: <In, Out>(
    address: ActorAddress | string,
    schemas: Schemas<In, Out>
  ) => Effect.Effect<ActorRef<In, Out>, ActorError>
  /** The counters of the local actor at `path`. */
  readonly stats: (path: string) => Effect.Effect<Stats, ActorError>
  /** Paths of the running local actors. */
  readonly paths: Effect.Effect<ReadonlyArray<string>>
}>() {}

/** Errors a remote sender gets, seen as the same errors a local sender gets. */
const fromMessageError = (error: MessageError): ActorError | MessageError => {
  if (error.reason === "MailboxFull") return new ActorError({ reason: "MailboxFull", detail: error.detail })
  if (error.reason === "NoHandler") return new ActorError({ reason: "NotFound", detail: error.detail })
  return error
}

const schemaError = (what: string) => new MessageError({ reason: "Schema", detail: `${what} does not match its schema` })

const askCell = <In, Out>(cell: Cell<In, Out>, sender: NodeId, message: In, timeout: Duration.DurationInput) =>
  Effect.gen(function*() {
    const answer = yield* Deferred.make<Out, ActorError | MessageError>()
    yield* cell.enqueue({ message, sender, reply: (result) => Deferred.done(answer, result) })
    return yield* Deferred.await(answer).pipe(
      Effect.timeoutFail({ duration: timeout, onTimeout: () => new MessageError({ reason: "Timeout", detail: `no reply from ${cell.address.path}` }) })
    )
  })

const remoteRef = <In, Out>(
  messages: Messages["Type"],
  address: ActorAddress,
  schemas: Schemas<In, Out>
): ActorRef<In, Out> => {
  const encode = (message: In) => Schema.encode(schemas.message)(message).pipe(Effect.mapError(() => schemaError("message")))
  const decode = (reply: unknown) => Schema.decodeUnknown(schemas.reply)(reply).pipe(Effect.mapError(() => schemaError("reply")))
  return {
    address,
    tell: (message) =>
      encode(message).pipe(
        Effect.flatMap((body) => messages.tell(address.node, address.path, body)),
        Effect.mapError(fromMessageError)
      ),
    ask: (message, options) =>
      encode(message).pipe(
        Effect.flatMap((body) => messages.ask(address.node, address.path, body, options)),
        Effect.flatMap(decode),
        Effect.mapError(fromMessageError)
      )
  }
}

/** Builds the registry of one node. */
export const make: Effect.Effect<Registry["Type"], never, Messages | Limits> = Effect.gen(function*() {
  const messages = yield* Messages
  const limits = yield* Limits
  const cells = new Map<string, Cell<any, any>>()

  const lookup = (path: string): Effect.Effect<Cell<any, any>, ActorError> => {
    const cell = cells.get(path)
    return cell === undefined ? Effect.fail(new ActorError({ reason: "NotFound", detail: `no actor at ${path}` })) : Effect.succeed(cell)
  }

  const directRef = <In, Out>(cell: Cell<In, Out>): ActorRef<In, Out> => ({
    address: cell.address,
    tell: (message) => cell.enqueue({ message, sender: messages.local, reply: undefined }),
    ask: (message, options) => askCell(cell, messages.local, message, options?.timeout ?? limits.callTimeout)
  })

  const spawn: Registry["Type"]["spawn"] = (path, behavior) => spawnIn(messages, limits, cells, path, behavior, directRef)

  const localRef = <In, Out>(address: ActorAddress, schemas: Schemas<In, Out>): ActorRef<In, Out> => {
    const viaMessages = remoteRef(messages, address, schemas)
    // The direct path skips encoding, which is only sound when the ref and the actor agree on the schemas.
    const resolve = Effect.suspend(() => lookup(address.path)).pipe(
      Effect.map((cell) => cell.message === schemas.message && cell.reply === schemas.reply ? directRef<In, Out>(cell) : viaMessages)
    )
    return {
      address,
      tell: (message) => Effect.flatMap(resolve, (ref) => ref.tell(message)),
      ask: (message, options) => Effect.flatMap(resolve, (ref) => ref.ask(message, options))
    }
  }

  const ref: Registry["Type"]["ref"] = (address, schemas) =>
    Effect.gen(function*() {
      const parsed = typeof address === "string"
        ? yield* parseAddress(address, limits.actorPathCharsMax)
        : { node: address.node, path: yield* checkPath(address.path, limits.actorPathCharsMax) }
      return parsed.node === messages.local ? localRef(parsed, schemas) : remoteRef(messages, parsed, schemas)
    })

  return Registry.of({
    spawn,
    ref,
    stats: (path) => Effect.flatMap(Effect.suspend(() => lookup(path)), (cell) => cell.stats),
    paths: Effect.sync(() => Array.from(cells.keys()))
  })
})

const checkMailbox = (options: MailboxOptions): Effect.Effect<void> =>
  Number.isSafeInteger(options.capacity) && options.capacity > 0
    ? Effect.void
    : Effect.dieMessage(`Actor mailbox capacity must be a positive integer, got ${options.capacity}`)

const reserve = (cells: Map<string, Cell<any, any>>, limits: Values, cell: Cell<any, any>): Effect.Effect<void, ActorError> =>
  Effect.suspend(() => {
    const path = cell.address.path
    if (cells.has(path)) return Effect.fail(new ActorError({ reason: "Exists", detail: `an actor already runs at ${path}` }))
    if (cells.size >= limits.actorsMax) return Effect.fail(new ActorError({ reason: "ActorsFull", detail: `actorsMax (${limits.actorsMax}) reached` }))
    cells.set(path, cell)
    return Effect.void
  })

const spawnIn = <S, In, Out, E>(
  messages: Messages["Type"],
  limits: Values,
  cells: Map<string, Cell<any, any>>,
  path: string,
  behavior: Behavior<S, In, Out, E>,
  directRef: (cell: Cell<In, Out>) => ActorRef<In, Out>
): Effect.Effect<LocalActor<In, Out>, ActorError, Scope.Scope> =>
  Effect.gen(function*() {
    yield* checkPath(path, limits.actorPathCharsMax)
    yield* checkMailbox(behavior.mailbox)
    if (cells.has(path)) return yield* new ActorError({ reason: "Exists", detail: `an actor already runs at ${path}` })
    const state = yield* behavior.initial
    const scope = yield* Effect.scope
    const attachScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
    const address: ActorAddress = { node: messages.local, path }
    const cell: Cell<In, Out> = ActorCell.make(behavior, {
      address,
      state,
      limits,
      onStop: Effect.zipRight(
        Scope.close(attachScope, Exit.void),
        Effect.sync(() => {
          if (cells.get(path) === cell) cells.delete(path)
        })
      )
    })
    yield* reserve(cells, limits, cell)
    yield* messages.attach(path, cell.deliver).pipe(Scope.extend(attachScope), Effect.tapError(() => cell.stop))
    const fiber = yield* Effect.forkIn(cell.run, scope)
    return { ...directRef(cell), stats: cell.stats, stop: Effect.zipRight(cell.stop, Fiber.interruptFork(fiber)) }
  })

/** Spawns an actor on this node at `path` for the life of the scope. */
export const spawn = <S, In, Out, E>(path: string, behavior: Behavior<S, In, Out, E>): Effect.Effect<LocalActor<In, Out>, ActorError, Registry | Scope.Scope> =>
  Effect.flatMap(Registry, (registry) => registry.spawn(path, behavior))

/** A reference to an actor anywhere (this node or a peer): the same `ActorRef` type. */
export const ref = <In, Out>(
  address: ActorAddress | string,
  schemas: Schemas<In, Out>
): Effect.Effect<ActorRef<In, Out>, ActorError, Registry> => Effect.flatMap(Registry, (registry) => registry.ref(address, schemas))

/** The node's actor registry, over its message layer and limits. */
export const layer: Layer.Layer<Registry, never, Messages | Limits> = Layer.effect(Registry, make)
