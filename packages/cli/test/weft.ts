/**
 * Runs the real `weft` executable (`node --import tsx packages/cli/src/bin.ts`) from the repo root,
 * as a user would, and kills it when the test's scope closes.
 */
import { Deferred, Duration, Effect, Queue, Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

/** The repository root. */
export const repoRoot = fileURLToPath(new URL("../../..", import.meta.url))

/** How a finished run ended. */
export interface Result {
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
      Deferred.unsafeDone(done, Effect.succeed({ code, signal, stdout, stderr }))
    })
    return { child, lines, exit: Deferred.await(done) }
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
