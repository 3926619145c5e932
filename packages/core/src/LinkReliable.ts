/**
 * Reliable sessions: wraps a raw link (LinkPlain, LinkSecure) so that every session it yields carries
 * reliable ordered streams (`Streams`) instead of datagrams. The message layer and RPC run over the
 * wrapped sessions unchanged: a frame sent with `{ stream }` arrives exactly once, in order with the
 * other frames of its stream, and a loss on one stream never holds up another.
 *
 * Each raw session becomes one stream connection over a path of single-cell datagrams
 * (`mtuBytes`), with the node's congestion control. Both ends of a session must wrap it; a node
 * always does (`Node.layer`).
 */
import { Effect, Exit, Scope, Stream } from "effect"
import * as CongestionControl from "./CongestionControl.js"
import type { Session } from "./Link.js"
import { Link } from "./Link.js"
import { Limits } from "./Limits.js"
import * as Path from "./Path.js"
import * as Streams from "./Streams.js"
import type { LinkError } from "./WeftError.js"

// Frames up to this size go as control: envelopes of calls, replies and acks ahead of bulk transfers.
const controlFrameBytesMax = 512

/** Wraps a raw link: the same service, with every session carrying reliable streams. */
export const wrap = (raw: Link["Type"]): Effect.Effect<Link["Type"], never, Scope.Scope | Limits | CongestionControl.CongestionControl> =>
  Effect.gen(function*() {
    const context = yield* Effect.context<Limits | CongestionControl.CongestionControl>()
    const layerScope = yield* Effect.scope
    const limits = yield* Limits
    const wrapped = new WeakMap<Session, Effect.Effect<Session>>()

    const reliable = (session: Session): Effect.Effect<Session> => {
      const existing = wrapped.get(session)
      if (existing !== undefined) return existing
      // Cached as a memoized effect so a dial and the sessions stream share one connection.
      const made = Effect.runSync(Effect.cached(connect(session, limits.streamsPerConnectionMax).pipe(
        Effect.provide(context),
        Scope.extend(layerScope)
      )))
      wrapped.set(session, made)
      return made
    }

    return Link.of({
      local: raw.local,
      address: raw.address,
      dial: (address) => Effect.flatMap(raw.dial(address), reliable),
      sessions: Stream.mapEffect(raw.sessions, reliable),
      peers: raw.peers,
      stats: raw.stats
    })
  })

// One stream connection per session, closed with the session (or the layer).
const connect = (session: Session, streamsMax: number) =>
  Effect.gen(function*() {
    const connectionScope = yield* Scope.fork(yield* Effect.scope, { _tag: "Sequential" } as never)
    // The connection's receiver ends when the session closes, and then closes the connection's scope.
    const connection = yield* Streams.make({
      data: Path.fromSession(session, session.mtuBytes),
      onEnd: Scope.close(connectionScope, Exit.void)
    }).pipe(Scope.extend(connectionScope))
    const frames = Stream.map(connection.frames, (item) => item.frame)
    return {
      peer: session.peer,
      remote: session.remote,
      initiator: session.initiator,
      frameBytesMax: Math.min(session.frameBytesMax, yield* Effect.map(Limits, (l) => l.streamFrameBytesMax)),
      mtuBytes: session.mtuBytes,
      send: (frame: Uint8Array, options?: { readonly stream?: number | undefined; readonly priority?: "control" | "bulk" | undefined }) =>
        connection.send((options?.stream ?? 0) % streamsMax, frame, {
          priority: options?.priority ?? (frame.length <= controlFrameBytesMax ? "control" : "bulk")
        }) as Effect.Effect<void, LinkError>,
      frames,
      receive: (onFrame) => connection.receive((item) => onFrame(item.frame)),
      closed: session.closed,
      close: Effect.zipRight(session.close, Scope.close(connectionScope, Exit.void))
    } satisfies Session
  })
