/**
 * Durations typed on a command line: Effect's own form (`5 seconds`, `500 millis`) and the short
 * forms people type (`5s`, `2m`, `500ms`, `1h`, `1.5s`).
 */
import { Duration, Either, Option } from "effect"

const units: Record<string, (value: number) => Duration.Duration> = {
  ms: Duration.millis,
  s: Duration.seconds,
  sec: Duration.seconds,
  m: Duration.minutes,
  min: Duration.minutes,
  h: Duration.hours,
  d: Duration.days
}

const shortForm = /^(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d)$/i

/** Parses a positive duration, or says (in one line) what a valid one looks like. */
export const parse = (text: string): Either.Either<Duration.Duration, string> => {
  const trimmed = text.trim()
  const match = shortForm.exec(trimmed)
  const decoded = match !== null
    ? Option.some(units[match[2]!.toLowerCase()]!(Number(match[1])))
    : Duration.decodeUnknown(trimmed)
  return Option.match(decoded, {
    onNone: () => Either.left(`not a duration: ${JSON.stringify(text)} (use e.g. 5s, 2m, 500ms or "5 seconds")`),
    onSome: (duration) =>
      Duration.greaterThan(duration, Duration.zero) && Duration.isFinite(duration)
        ? Either.right(duration)
        : Either.left(`the duration must be positive and finite: ${JSON.stringify(text)}`)
  })
}
