/**
 * The two processes of each compared side: `peer.ts <role>` forked from the orchestrator, driven over
 * its IPC channel with numbered calls (`call(op, arg)` → the role's answer), plus a relay channel the
 * orchestrator forwards between the two peers of a pair (node-datachannel's SDP and candidates).
 *
 * Every child is ended when the orchestrator's scope closes (asked to exit, then SIGKILL after a grace
 * period), when the orchestrator exits by any path (`exit`, SIGINT, SIGTERM), and by itself when its
 * IPC channel disconnects (the orchestrator died without running its handlers).
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { type ChildProcess, fork } from "node:child_process"
import { fileURLToPath } from "node:url"

/** Orchestrator → child. */
export type ToChild =
  | { readonly kind: "call"; readonly id: number; readonly op: string; readonly arg: unknown }
  | { readonly kind: "relay"; readonly data: unknown }
  | { readonly kind: "exit" }

/** Child → orchestrator. */
export type FromChild =
  | { readonly kind: "ready"; readonly info: unknown }
  | { readonly kind: "reply"; readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly kind: "reply"; readonly id: number; readonly ok: false; readonly error: string }
  | { readonly kind: "relay"; readonly data: unknown }
  | { readonly kind: "failed"; readonly error: string }

/** A running child as the orchestrator sees it. */
export interface Peer {
  readonly role: string
  /** What the role reported when it was ready (addresses, ports). */
  readonly info: Record<string, unknown>
  /** Runs `op` in the child; dies if it fails, takes longer than `timeoutMs` (default 60 s), or any child dies. */
  readonly call: <A = unknown>(op: string, arg?: unknown, timeoutMs?: number) => Effect.Effect<A>
  /** Relay messages the child sends for its partner. */
  readonly onRelay: (handler: (data: unknown) => void) => void
  readonly relay: (data: unknown) => void
}

const live = new Set<ChildProcess>()
/** Children being stopped on purpose: their exit is not a failure. */
const stopping = new WeakSet<ChildProcess>()
/** Fails every pending call of every child: one dead peer would otherwise leave its partner waiting. */
const failAll = new Set<(reason: string) => void>()

const progressError = (text: string): void => void process.stderr.write(`${text}\n`)
let exitHooked = false

// The last line of defence: whatever ends the orchestrator, no child outlives it.
const hookExit = (): void => {
  if (exitHooked) return
  exitHooked = true
  const killAll = () => {
    for (const child of live) child.kill("SIGKILL")
  }
  process.on("exit", killAll)
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      killAll()
      process.exit(130)
    })
  }
}

const exitGraceMs = 5_000

const stop = (child: ChildProcess): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    stopping.add(child)
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    const timer = setTimeout(() => child.kill("SIGKILL"), exitGraceMs)
    child.once("exit", () => {
      clearTimeout(timer)
      resume(Effect.void)
    })
    if (child.connected) child.send({ kind: "exit" } satisfies ToChild)
    else child.kill("SIGKILL")
  })

const waitReady = (child: ChildProcess, role: string): Effect.Effect<Record<string, unknown>> =>
  Effect.async<Record<string, unknown>>((resume) => {
    const onMessage = (message: FromChild) => {
      if (message.kind === "ready") finish(Effect.succeed(message.info as Record<string, unknown>))
      else if (message.kind === "failed") finish(Effect.dieMessage(`${role}: ${message.error}`))
    }
    const onExit = (code: number | null) => finish(Effect.dieMessage(`${role} exited (${code}) before it was ready`))
    const finish = (effect: Effect.Effect<Record<string, unknown>>) => {
      child.off("message", onMessage)
      child.off("exit", onExit)
      resume(effect)
    }
    child.on("message", onMessage)
    child.once("exit", onExit)
  })

/**
 * Forks `peer.ts <role> <init as JSON>` and waits until it is ready; the scope's close ends it. With a
 * `partner`, the two relay to each other from the start (a client may need its server to get ready).
 */
export const spawn = (role: string, init: unknown = {}, partner?: Peer): Effect.Effect<Peer, never, Scope.Scope> =>
  Effect.gen(function*() {
    hookExit()
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const forked = fork(fileURLToPath(new URL("./peer.ts", import.meta.url)), [role, JSON.stringify(init)], {
          execArgv: [...process.execArgv, "--expose-gc"],
          stdio: ["ignore", "inherit", "inherit", "ipc"]
        })
        live.add(forked)
        forked.once("exit", () => live.delete(forked))
        return forked
      }),
      stop
    )
    // Listening before the child is ready: a role may relay (signal its partner) while it starts.
    const drive = driver(child, role)
    if (partner !== undefined) {
      drive.onRelay(partner.relay)
      partner.onRelay(drive.relay)
    }
    const info = yield* waitReady(child, role)
    return { ...drive, info }
  })

const driver = (child: ChildProcess, role: string) => {
  let nextId = 0
  const pending = new Map<number, (result: FromChild & { kind: "reply" }) => void>()
  // Relay messages wait here until the orchestrator pairs this child with its partner.
  const early: Array<unknown> = []
  let relayHandler: (data: unknown) => void = (data) => void early.push(data)
  child.on("message", (message: FromChild) => {
    if (message.kind === "reply") pending.get(message.id)?.(message)
    else if (message.kind === "relay") relayHandler(message.data)
  })
  // A send racing the child's exit reports here; the exit handler below fails what was pending.
  child.on("error", (error) => progressError(`${role}: ${error.message}`))
  const fail = (reason: string) => {
    for (const [id, settle] of pending) settle({ kind: "reply", id, ok: false, error: reason })
  }
  failAll.add(fail)
  child.once("exit", (code, signal) => {
    failAll.delete(fail)
    const reason = `${role} exited (${code ?? signal})`
    fail(reason)
    if (!stopping.has(child)) for (const other of failAll) other(reason)
  })
  const call = <A>(op: string, arg?: unknown, timeoutMs = 60_000): Effect.Effect<A> =>
    Effect.async<A>((resume) => {
      if (!child.connected) return resume(Effect.dieMessage(`${role} ${op}: the child is gone`))
      const id = nextId++
      const timer = setTimeout(() => pending.get(id)?.({ kind: "reply", id, ok: false, error: `no answer in ${timeoutMs} ms` }), timeoutMs)
      pending.set(id, (reply) => {
        clearTimeout(timer)
        pending.delete(id)
        resume(reply.ok ? Effect.succeed(reply.value as A) : Effect.dieMessage(`${role} ${op}: ${reply.error}`))
      })
      child.send({ kind: "call", id, op, arg } satisfies ToChild)
    })
  return {
    role,
    call,
    onRelay: (handler: (data: unknown) => void) => {
      relayHandler = handler
      for (const data of early.splice(0)) handler(data)
    },
    relay: (data: unknown) => void child.send({ kind: "relay", data } satisfies ToChild)
  }
}

// ---------------------------------------------------------------------------------------------------
// The child side

/** What a role gives its child process. */
export interface Role {
  readonly info: Record<string, unknown>
  readonly ops: Record<string, (arg: unknown) => Promise<unknown>>
  /** Runs before the process exits (close sockets, nodes). */
  readonly close?: (() => Promise<void>) | undefined
}

/** What a role receives when it starts. */
export interface RoleContext {
  readonly init: Record<string, unknown>
  /** Sends data to the partner child (through the orchestrator). */
  readonly relay: (data: unknown) => void
  /** Relay messages from the partner; set once. */
  readonly onRelay: (handler: (data: unknown) => void) => void
}

const send = (message: FromChild): void => void process.send?.(message)

const describe = (error: unknown): string => error instanceof Error ? (error.stack ?? error.message) : String(error)

/** Runs `start` as this child's role until the orchestrator says exit or disconnects. */
export const runRole = async (start: (context: RoleContext) => Promise<Role>, init: Record<string, unknown>): Promise<void> => {
  let relayHandler: (data: unknown) => void = () => {}
  // Calls run one at a time, in order: a measurement never overlaps another on the same process.
  let queue: Promise<void> = Promise.resolve()
  let role: Role | undefined
  const exit = async (code: number) => {
    await role?.close?.().catch(() => {})
    process.exit(code)
  }
  process.on("disconnect", () => void exit(0))
  process.on("message", (message: ToChild) => {
    if (message.kind === "exit") void queue.then(() => exit(0))
    else if (message.kind === "relay") relayHandler(message.data)
    else if (message.kind === "call") queue = queue.then(() => answer(role!, message))
  })
  try {
    role = await start({ init, relay: (data) => send({ kind: "relay", data }), onRelay: (h) => void (relayHandler = h) })
    send({ kind: "ready", info: role.info })
  } catch (error) {
    send({ kind: "failed", error: describe(error) })
    await exit(1)
  }
}

/** Every role answers `cpu`: its process's CPU time (all threads) and clock, in ms. */
const cpu = async (): Promise<Cpu> => {
  const used = process.cpuUsage()
  return { cpuMs: (used.user + used.system) / 1000, atMs: performance.now() }
}

/** A process's CPU time and clock, in ms. */
export interface Cpu {
  readonly cpuMs: number
  readonly atMs: number
}

const answer = async (role: Role, message: ToChild & { kind: "call" }): Promise<void> => {
  const op = message.op === "cpu" ? cpu : role.ops[message.op]
  try {
    if (op === undefined) throw new Error(`unknown op ${message.op}`)
    send({ kind: "reply", id: message.id, ok: true, value: await op(message.arg) })
  } catch (error) {
    send({ kind: "reply", id: message.id, ok: false, error: describe(error) })
  }
}
