/**
 * Runs the real `weft` executable (`node --import tsx packages/cli/src/bin.ts`) from the repo root,
 * as a user would, and kills it when the test's scope closes. `runHere` runs the same command tree in
 * the test's own process, for the many quick checks of parsing and error lines: a `weft` process costs
 * a couple of CPU seconds just to load, and the test files run one after another.
 */
import { NodeContext } from "@effect/platform-node"
import { Console, Deferred, Duration, Effect, Queue, Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import { fileURLToPath } from "node:url"
import { exitStatus } from "../src/Cli.js"

/** The repository root. */
export const repoRoot = fileURLToPath(new URL("../../..", import.meta.url))

/** How a finished run ended. */
export interface Result {
  readonly pid: number
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** A running `weft`: its stdout lines as they come, and how it ends. */
export interface Running {
  readonly child: ChildProcess
  readonly lines: Queue.Dequeue<string>
  readonly exit: Effect.Effect<Result>
}

const launch = (args: ReadonlyArray<string>) =>
  spawn(process.execPath, ["--import", "tsx", "packages/cli/src/bin.ts", ...args], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1" }
  })

/** Starts `weft args…`; the process is killed (SIGKILL) when the scope closes if it is still running. */
export const start = (args: ReadonlyArray<string>): Effect.Effect<Running, never, Scope.Scope> =>
  Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(Effect.sync(() => launch(args)), (child) =>
      Effect.sync(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
      }))
    const lines = yield* Queue.unbounded<string>()
    const done = yield* Deferred.make<Result>()
    let stdout = ""
    let stderr = ""
    let partial = ""
    child.stdout!.on("data", (chunk: Buffer) => {
      stdout += chunk.toString()
      partial += chunk.toString()
      const parts = partial.split("\n")
      partial = parts.pop() ?? ""
      for (const line of parts) Queue.unsafeOffer(lines, line)
    })
    child.stderr!.on("data", (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    child.on("close", (code, signal) => {
      Deferred.unsafeDone(done, Effect.succeed({ pid: child.pid!, code, signal, stdout, stderr }))
    })
    return { child, lines, exit: Deferred.await(done) }
  })

/** A console that appends what is printed to `out` (log) and `err` (error), one string per line. */
export const capture = (console: Console.Console, out: Array<string>, err: Array<string>): Console.Console => {
  const log = (...args: ReadonlyArray<unknown>) => void out.push(`${args.map(String).join(" ")}\n`)
  const error = (...args: ReadonlyArray<unknown>) => void err.push(`${args.map(String).join(" ")}\n`)
  return {
    ...console,
    log: (...args) => Effect.sync(() => log(...args)),
    error: (...args) => Effect.sync(() => error(...args)),
    unsafe: { ...console.unsafe, log, error }
  }
}

/** Runs `weft args…` in this process, with its output captured; `pid` is this process's. */
export const runHere = (args: ReadonlyArray<string>): Effect.Effect<Result> =>
  Console.consoleWith((console) => {
    const out: Array<string> = []
    const err: Array<string> = []
    return exitStatus(["node", "weft", ...args]).pipe(
      Effect.withConsole(capture(console, out, err)),
      Effect.provide(NodeContext.layer),
      Effect.map((code): Result => ({ pid: process.pid, code, signal: null, stdout: out.join(""), stderr: err.join("") }))
    )
  })

/** Runs `weft args…` to completion, failing if it takes longer than `timeout`. */
export const run = (args: ReadonlyArray<string>, timeout: Duration.DurationInput = "20 seconds"): Effect.Effect<Result, Error> =>
  Effect.scoped(
    Effect.flatMap(start(args), (running) =>
      running.exit.pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => new Error(`weft ${args.join(" ")} did not exit within ${Duration.format(timeout)}`)
        })
      ))
  )

/** The non-empty lines of a text. */
export const linesOf = (text: string): ReadonlyArray<string> => text.split("\n").filter((line) => line.trim().length > 0)

/**
 * Whether process `pid` is still running. A zombie (exited, not yet reaped: this VM's init reaps
 * orphans late) counts as gone; so does a pid with no /proc entry.
 */
export const isAlive = (pid: number): boolean => {
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3)
    return state !== "Z" && state !== "X"
  } catch {
    return false
  }
}

/** Takes lines from a running `weft` until `done` holds for one, failing after `timeout`. */
export const takeUntil = <A>(
  running: Running,
  decode: (line: string) => A,
  done: (line: A, seen: ReadonlyArray<A>) => boolean,
  timeout: Duration.DurationInput = "30 seconds"
): Effect.Effect<ReadonlyArray<A>, Error> =>
  Effect.suspend(() => {
    const seen: Array<A> = []
    const take: Effect.Effect<ReadonlyArray<A>> = Effect.flatMap(Queue.take(running.lines), (text) => {
      const line = decode(text)
      seen.push(line)
      return done(line, seen) ? Effect.succeed(seen) : take
    })
    return take.pipe(Effect.timeoutFail({
      duration: timeout,
      onTimeout: () => new Error(`not seen within ${Duration.format(timeout)}; last lines: ${seen.slice(-4).map((line) => JSON.stringify(line)).join(" ")}`)
    }))
  })
