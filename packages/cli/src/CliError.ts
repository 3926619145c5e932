/**
 * The one error a `weft` command fails with: a single line saying what was wrong and what to do.
 * Errors from `@weft/core` carry a `detail` for humans; `describe` turns any failure into one line so
 * that no stack trace or Effect cause ever reaches the user.
 */
import { Schema } from "effect"

/** A command failed; `message` is one line, shown after `weft: `. */
export class CliError extends Schema.TaggedError<CliError>()("CliError", {
  message: Schema.String
}) {}

const firstLine = (text: string): string => text.trim().split("\n").map((line) => line.trim()).filter((line) => line.length > 0).join(" ")

/** One line describing any failure: a typed error's detail, an Error's message, or the value itself. */
export const describe = (error: unknown): string => {
  if (typeof error === "object" && error !== null) {
    const { detail, message, reason, _tag } = error as {
      readonly detail?: unknown
      readonly message?: unknown
      readonly reason?: unknown
      readonly _tag?: unknown
    }
    if (typeof detail === "string" && detail.length > 0) return firstLine(detail)
    if (typeof message === "string" && message.length > 0) return firstLine(message)
    if (typeof reason === "string") return `${String(_tag ?? "error")}: ${reason}`
  }
  return firstLine(String(error))
}
