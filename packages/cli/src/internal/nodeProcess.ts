/**
 * One `weft node run --supervised --json` child process: spawned with the loader this process runs
 * under, its stderr in `<dataDir>/node.log`, its `ready` line read from stdout. It is stopped when the
 * scope closes (SIGTERM, then SIGKILL after a grace period) and, should this process die first, it
 * stops itself when its stdin closes (see `NodeRun`), so it never outlives its parent.
 */
import { Deferred, Duration, Effect, Either, Schema } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Readline from "node:readline"
import { fileURLToPath } from "node:url"
import { CliError } from "../CliError.js"
import { Control } from "./core.js"

/** The line a child prints once its node is up. */
export const Ready = Schema.Struct({
  event: Schema.Literal("ready"),
  id: Schema.String,
  pid: Schema.Number,
  control: Schema.String,
  transports: Schema.Array(Control.TransportInfo)
})

/** A child's ready line, decoded. */
export type Ready = typeof Ready.Type

/** How a child ended: an exit code, or the signal that killed it. */
export interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** A running child node. */
export interface NodeProcess {
  readonly ready: Ready
  readonly log: string
  /** Completes when the process has exited. */
  readonly exited: Effect.Effect<Exit>
  readonly isRunning: () => boolean
}

/** How long a child may take to print its ready line (it loads the TypeScript sources first). */
export const readyTimeout = Duration.seconds(60)

/** How long a child may take to stop after SIGTERM before it gets SIGKILL. */
export const stopGracePeriod = Duration.seconds(5)

// The executable next to this module: bin.ts when run from source, bin.js once compiled.
const binPath = fileURLToPath(new URL(`../bin${Path.extname(fileURLToPath(import.meta.url))}`, import.meta.url))

// The loader flags this process runs under (`--import tsx`, or the ones the tsx CLI adds), so the
// child runs the same way; debugger flags are left out, their port is this process's.
const loaderArgs = (): ReadonlyArray<string> => process.execArgv.filter((arg) => !/^--(inspect|debug)/.test(arg))

/** The argv of the child that runs the node in `dataDir`. */
export const commandLine = (dataDir: string): ReadonlyArray<string> => [
  ...loaderArgs(),
  binPath,
  "node",
  "run",
  "--data",
  dataDir,
  "--json",
  "--supervised"
]

const isRunning = (child: ChildProcess) => () => child.pid !== undefined && child.exitCode === null && child.signalCode === null

/** "exited with code 1" or "was killed by SIGKILL". */
export const describeExit = (exit: Exit): string => (exit.signal !== null ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`)

// The last line the child wrote to its log: for a child that failed to start, its `weft: …` line.
const lastLogLine = (log: string): string => {
  try {
    const lines = Fs.readFileSync(log, "utf8").split("\n").map((line) => line.trim()).filter((line) => line.length > 0)
    return lines.at(-1)?.replace(/^weft: /, "") ?? "(no output)"
  } catch {
    return "(no log)"
  }
}

// Children still running, killed if this process exits without stopping them (one `exit` listener for all).
const running = new Set<ChildProcess>()
const killRunning = () => running.forEach((child) => child.kill("SIGKILL"))

const track = (child: ChildProcess): void => {
  if (!process.listeners("exit").includes(killRunning)) process.on("exit", killRunning)
  running.add(child)
}

const openLog = (log: string): Effect.Effect<number, CliError> =>
  Effect.try({
    try: () => {
      Fs.mkdirSync(Path.dirname(log), { recursive: true, mode: 0o700 })
      return Fs.openSync(log, "a", 0o600)
    },
    catch: (cause) => new CliError({ message: `cannot open the node log ${log}: ${cause instanceof Error ? cause.message : String(cause)}` })
  })

const launch = (dataDir: string, logFd: number): ChildProcess =>
  spawn(process.execPath, commandLine(dataDir), { stdio: ["pipe", "pipe", logFd], detached: false })

/**
 * SIGTERM, then SIGKILL after the grace period; completes once the process is gone (or, should even
 * SIGKILL not be reported within another grace period, gives up waiting rather than hang the exit).
 */
export const stop = (child: ChildProcess, exited: Effect.Effect<Exit>): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (!isRunning(child)()) return Effect.void
    child.kill("SIGTERM")
    return exited.pipe(
      Effect.timeout(stopGracePeriod),
      Effect.catchAll(() => Effect.zipRight(Effect.sync(() => child.kill("SIGKILL")), Effect.timeout(exited, stopGracePeriod))),
      Effect.ignore
    )
  })

// Spawns the child; the scope's close stops it, and so does this process's exit, however it happens.
const acquire = (dataDir: string, log: string) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const logFd = yield* openLog(log)
      const exited = yield* Deferred.make<Exit>()
      const child = yield* Effect.sync(() => launch(dataDir, logFd)).pipe(Effect.ensuring(Effect.sync(() => Fs.closeSync(logFd))))
      const done = (exit: Exit) => {
        running.delete(child)
        Deferred.unsafeDone(exited, Effect.succeed(exit))
      }
      track(child)
      child.once("exit", (code, signal) => done({ code, signal }))
      // A process that could not be spawned at all never exits: it is done now.
      child.once("error", () => child.pid === undefined && done({ code: null, signal: null }))
      return { child, exited: Deferred.await(exited) }
    }),
    ({ child, exited }) => stop(child, exited)
  )

// The first stdout line, decoded; later lines are read and ignored so that the pipe never fills.
const readyLine = (child: ChildProcess, label: string) =>
  Effect.async<Ready, CliError>((resume) => {
    const lines = Readline.createInterface({ input: child.stdout! })
    lines.once("line", (line) => {
      const decoded = Either.try(() => Schema.decodeUnknownSync(Ready)(JSON.parse(line)))
      resume(Either.match(decoded, {
        onLeft: () => Effect.fail(new CliError({ message: `${label} printed something other than its ready line: ${line.slice(0, 200)}` })),
        onRight: Effect.succeed
      }))
    })
    child.once("error", (error) => resume(Effect.fail(new CliError({ message: `cannot start ${label}: ${error.message}` }))))
  })

/**
 * Starts the node of `dataDir` as a child process and waits for its ready line. `label` names it in
 * errors ("node 2"); `keepLog` says whether the log outlives the run, so errors may point to it.
 */
export const start = (options: { readonly dataDir: string; readonly label: string; readonly keepLog: boolean }) =>
  Effect.gen(function*() {
    const log = Path.join(options.dataDir, "node.log")
    const { child, exited } = yield* acquire(options.dataDir, log)
    const where = options.keepLog ? ` (log: ${log})` : ""
    const diedEarly = Effect.flatMap(exited, (exit) =>
      Effect.fail(new CliError({ message: `${options.label} (pid ${child.pid}) ${describeExit(exit)} before it was up: ${lastLogLine(log)}${where}` })))
    const ready = yield* Effect.raceFirst(readyLine(child, options.label), diedEarly).pipe(
      Effect.timeoutFail({
        duration: readyTimeout,
        onTimeout: () => new CliError({ message: `${options.label} did not report ready within ${Duration.format(readyTimeout)}${where}` })
      })
    )
    return { ready, log, exited, isRunning: isRunning(child) } satisfies NodeProcess
  })
