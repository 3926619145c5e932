/**
 * The second process of a two-process bench: this same script forked with a role flag, talked to over
 * its IPC channel, and told to exit (then awaited) when the bench's scope closes.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { type ChildProcess, fork } from "node:child_process"
import { fileURLToPath } from "node:url"

/** The next message the child sends. */
export const nextMessage = <M>(child: ChildProcess): Effect.Effect<M> =>
  Effect.async<M>((resume) => {
    const onMessage = (message: M) => resume(Effect.succeed(message))
    child.once("message", onMessage)
    return Effect.sync(() => void child.off("message", onMessage))
  })

/** Forks the script at `moduleUrl` with `args` (and --expose-gc); on scope close sends `exitMessage` and waits for it to exit. */
export const forkSelf = (moduleUrl: string, args: ReadonlyArray<string>, exitMessage: object): Effect.Effect<ChildProcess, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() =>
      fork(fileURLToPath(moduleUrl), [...args], {
        execArgv: [...process.execArgv, "--expose-gc"],
        stdio: ["ignore", "inherit", "inherit", "ipc"]
      })
    ),
    (child) =>
      Effect.async<void>((resume) => {
        if (child.exitCode !== null) return resume(Effect.void)
        child.once("exit", () => resume(Effect.void))
        child.send(exitMessage)
      })
  )
