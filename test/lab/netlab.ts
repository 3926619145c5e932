/**
 * A three-namespace network lab for tests on real UDP: `a` ⇄ `m` (middlebox) ⇄ `b`, with the packet
 * impairment done by the kernel in `m` (this kernel has no netem; see /work/shared/notes/netlab.md):
 *
 * - loss: nft `numgen random mod 1000 < N drop`, per direction (priority -100 on forward);
 * - duplication: nft `dup to <destination> device <interface>`, per direction (priority -20): the copy
 *   leaves at once, the original goes on through the reordering queue;
 * - reordering: `iptables -j NFQUEUE` (priority 0) into `nfq_impair.py`, which holds each packet a random
 *   delay, so later packets overtake earlier ones; `--queue-bypass` lets traffic through if it dies.
 *
 * Namespaces are `weft<random>-<pid>a|m|b` (the pid of the process that made them), addresses 10.99.1.0/24
 * (a side) and 10.99.2.0/24 (b side) only, and exist only inside the lab. `up` first sweeps labs whose
 * creator is dead; `down` (idempotent, synchronous) kills every process it spawned (process groups),
 * then every process left in the namespaces, then deletes them. It also runs on process exit and on
 * SIGINT/SIGTERM while a lab is up. Root only; `ensureTools` installs nftables and iptables if missing.
 */
import { type ChildProcess, execFileSync, spawn as spawnChild } from "node:child_process"
import { randomBytes } from "node:crypto"
import { existsSync, readFileSync } from "node:fs"
import { dirname, resolve } from "node:path"
import { fileURLToPath } from "node:url"

/** The repository root (peers run from there, so `--import tsx` and `@weft/*` resolve). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..")

const labDir = dirname(fileURLToPath(import.meta.url))
const env = { ...process.env, PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin:/usr/bin:/bin` }
// Debian's python3 when present: the pyenv shim on PATH forks helpers and is slower to start.
const python = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3"
const namePattern = /^weft[a-z0-9]+-(\d+)[amb]$/

/** The hosts of a lab; `m` is the middlebox. */
export type Host = "a" | "m" | "b"

/** Host addresses: `a` and `b` reach each other only through `m`. */
export const addresses = { a: "10.99.1.2", b: "10.99.2.2" } as const

/** Impairment of the forwarded traffic, applied in both directions. */
export interface Impairment {
  /** Per-mille of packets dropped. */
  readonly lossPerMille: number
  /** Per-mille of (surviving) packets sent twice. */
  readonly duplicatePerMille: number
  /** Each packet is held `delayMs + U(0, jitterMs)` ms by the NFQUEUE daemon; 0 and 0 for no daemon. */
  readonly delayMs: number
  readonly jitterMs: number
  /** Seed of the daemon's delays (the kernel's loss and duplication draws are not seedable). */
  readonly seed: number
}

/** The nft counters of the impairment rules, by rule comment (`loss-ab`, `loss-ba`, `dup-ab`, `dup-ba`). */
export type Counters = Record<string, { readonly packets: number; readonly bytes: number }>

/** What the reordering daemon counted. */
export interface ReorderStats {
  readonly packets: number
  readonly overtaken: number
  readonly enobufs: number
}

/** A process in a lab namespace: its protocol messages (`@@weft ` JSON lines), and its log tail. */
export interface LabProcess {
  readonly name: string
  readonly child: ChildProcess
  /** Every protocol message so far, in order. */
  readonly messages: Array<Record<string, unknown>>
  /** Resolves with the first message of `type` (past or future); rejects on exit or after `timeoutMs`. */
  readonly waitFor: (type: string, timeoutMs: number) => Promise<Record<string, unknown>>
  /** Writes one command line to stdin (ignored once the process is gone). */
  readonly command: (line: string) => void
  /** The last lines of stdout/stderr that were not messages. */
  readonly log: () => string
}

/** A running lab. */
export interface Lab {
  readonly id: string
  readonly namespaces: Readonly<Record<Host, string>>
  /** Runs a command in a namespace and returns its stdout; throws with stderr on failure. */
  readonly exec: (host: Host, command: string, args: ReadonlyArray<string>, input?: string) => string
  /** Starts a process in a namespace in its own process group; `prefix` marks its protocol lines. */
  readonly spawn: (host: Host, name: string, command: string, args: ReadonlyArray<string>, prefix?: string) => LabProcess
  /** Installs the impairment rules and starts the reordering daemon. */
  readonly impair: (impairment: Impairment) => Promise<void>
  readonly counters: () => Counters
  /** Stops the reordering daemon (it releases what it holds) and returns its counts. */
  readonly stopReorder: () => Promise<ReorderStats>
  /** Tears everything down; idempotent. */
  readonly down: () => void
}

const run = (command: string, args: ReadonlyArray<string>, input?: string): string => {
  try {
    return execFileSync(command, [...args], { env, encoding: "utf8", input: input ?? "", stdio: ["pipe", "pipe", "pipe"] })
  } catch (error) {
    const failed = error as { stderr?: string; message: string }
    throw new Error(`${command} ${args.join(" ")}: ${failed.stderr?.trim() || failed.message}`)
  }
}

const tryRun = (command: string, args: ReadonlyArray<string>): void => {
  try {
    run(command, args)
  } catch {
    // Teardown goes on past what is already gone.
  }
}

/** Installs nftables and iptables when missing (apt-get, noninteractive); throws if the lab cannot run here. */
export const ensureTools = (): void => {
  if (process.getuid?.() !== 0) throw new Error("the network lab needs root (namespaces, nft, iptables)")
  run("sh", [resolve(labDir, "ensure-tools.sh")])
}

const listNamespaces = (): Array<string> =>
  run("ip", ["netns", "list"]).split("\n").map((line) => line.split(" ")[0] ?? "").filter((name) => name !== "")

// A zombie still answers kill(pid, 0); this VM's init reaps late, so read the state instead.
const alive = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z"
  } catch {
    return false
  }
}

const killNamespace = (namespace: string): void => {
  let pids: Array<number> = []
  try {
    pids = run("ip", ["netns", "pids", namespace]).split("\n").filter((s) => s !== "").map(Number)
  } catch {
    return
  }
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // Already gone.
    }
  }
  tryRun("ip", ["netns", "del", namespace])
}

/** Deletes the lab namespaces whose creating process is dead (left by a crashed run); returns their names. */
export const sweepStale = (): ReadonlyArray<string> => {
  const stale = listNamespaces().filter((name) => {
    const match = namePattern.exec(name)
    return match !== null && !alive(Number(match[1]))
  })
  for (const name of stale) killNamespace(name)
  return stale
}

const live = new Set<Lab>()
const downAll = (): void => {
  for (const lab of [...live]) lab.down()
}
// Tears down, then re-raises the signal with our handlers gone, so it does what it would have done
// (process.exit is no option: a vitest worker replaces it with a throw).
const onSignal = (signal: NodeJS.Signals): void => {
  downAll()
  process.kill(process.pid, signal)
}
const track = (lab: Lab): void => {
  if (live.size === 0) {
    process.on("exit", downAll)
    process.on("SIGINT", onSignal)
    process.on("SIGTERM", onSignal)
  }
  live.add(lab)
}
const untrack = (lab: Lab): void => {
  live.delete(lab)
  if (live.size === 0) {
    process.off("exit", downAll)
    process.off("SIGINT", onSignal)
    process.off("SIGTERM", onSignal)
  }
}

const logLinesKept = 60

const labProcess = (name: string, child: ChildProcess, prefix: string): LabProcess => {
  const messages: Array<Record<string, unknown>> = []
  const logLines: Array<string> = []
  const waiters = new Set<() => void>()
  let exited: string | undefined
  const keep = (line: string) => {
    logLines.push(line)
    if (logLines.length > logLinesKept) logLines.shift()
  }
  const onLine = (line: string) => {
    if (!line.startsWith(prefix)) return keep(line)
    try {
      messages.push(JSON.parse(line.slice(prefix.length)) as Record<string, unknown>)
    } catch {
      return keep(line)
    }
    for (const wake of [...waiters]) wake()
  }
  const split = (stream: NodeJS.ReadableStream | null) => {
    let buffered = ""
    stream?.setEncoding("utf8")
    stream?.on("data", (data: string) => {
      buffered += data
      const lines = buffered.split("\n")
      buffered = lines.pop() ?? ""
      for (const line of lines) onLine(line)
    })
  }
  split(child.stdout)
  split(child.stderr)
  child.stdin?.on("error", () => {})
  child.on("exit", (code, signal) => {
    exited = `${name} exited (code ${code}, signal ${signal})`
    for (const wake of [...waiters]) wake()
  })
  const waitFor = (type: string, timeoutMs: number) =>
    new Promise<Record<string, unknown>>((resolvePromise, reject) => {
      const check = () => {
        const found = messages.find((m) => m.type === type)
        if (found === undefined && exited === undefined) return false
        cleanup()
        if (found !== undefined) resolvePromise(found)
        else reject(new Error(`${exited} before "${type}"\n${logLines.join("\n")}`))
        return true
      }
      const timer = setTimeout(() => {
        cleanup()
        reject(new Error(`${name}: no "${type}" within ${timeoutMs} ms\n${logLines.join("\n")}`))
      }, timeoutMs)
      const cleanup = () => {
        clearTimeout(timer)
        waiters.delete(wake)
      }
      const wake = () => void check()
      if (!check()) waiters.add(wake)
    })
  return {
    name,
    child,
    messages,
    waitFor,
    command: (line) => {
      if (exited === undefined && child.stdin?.writable === true) child.stdin.write(`${line}\n`)
    },
    log: () => logLines.join("\n")
  }
}

const killGroup = (child: ChildProcess, signal: NodeJS.Signals): void => {
  if (child.pid === undefined) return
  try {
    process.kill(-child.pid, signal)
  } catch {
    // The group is gone.
  }
}

const impairRules = (impairment: Impairment): string => `
table ip weft_impair {
  chain loss {
    type filter hook forward priority -100; policy accept;
    iifname "ma" numgen random mod 1000 < ${impairment.lossPerMille} counter drop comment "loss-ab"
    iifname "mb" numgen random mod 1000 < ${impairment.lossPerMille} counter drop comment "loss-ba"
  }
  chain duplicate {
    type filter hook forward priority -20; policy accept;
    iifname "ma" numgen random mod 1000 < ${impairment.duplicatePerMille} counter dup to ${addresses.b} device "mb" comment "dup-ab"
    iifname "mb" numgen random mod 1000 < ${impairment.duplicatePerMille} counter dup to ${addresses.a} device "ma" comment "dup-ba"
  }
}
`

interface NftRule {
  readonly rule?: { readonly comment?: string; readonly expr?: ReadonlyArray<Record<string, unknown>> }
}

const parseCounters = (json: string): Counters => {
  const counters: Record<string, { packets: number; bytes: number }> = {}
  for (const item of (JSON.parse(json) as { nftables: ReadonlyArray<NftRule> }).nftables) {
    const comment = item.rule?.comment
    const counter = item.rule?.expr?.find((e) => "counter" in e)?.counter as { packets: number; bytes: number } | undefined
    if (comment !== undefined && counter !== undefined) counters[comment] = { packets: counter.packets, bytes: counter.bytes }
  }
  return counters
}

// The veths and addresses: a:va 10.99.1.2 ⇄ m:ma 10.99.1.1 | m:mb 10.99.2.1 ⇄ b:vb 10.99.2.2.
const build = (ns: Readonly<Record<Host, string>>): void => {
  for (const host of ["a", "m", "b"] as const) run("ip", ["netns", "add", ns[host]])
  run("ip", ["link", "add", "va", "netns", ns.a, "type", "veth", "peer", "name", "ma", "netns", ns.m])
  run("ip", ["link", "add", "vb", "netns", ns.b, "type", "veth", "peer", "name", "mb", "netns", ns.m])
  run("ip", ["-n", ns.a, "addr", "add", `${addresses.a}/24`, "dev", "va"])
  run("ip", ["-n", ns.m, "addr", "add", "10.99.1.1/24", "dev", "ma"])
  run("ip", ["-n", ns.m, "addr", "add", "10.99.2.1/24", "dev", "mb"])
  run("ip", ["-n", ns.b, "addr", "add", `${addresses.b}/24`, "dev", "vb"])
  for (const [host, dev] of [["a", "va"], ["m", "ma"], ["m", "mb"], ["b", "vb"]] as const) {
    run("ip", ["-n", ns[host], "link", "set", "dev", dev, "up"])
  }
  for (const host of ["a", "m", "b"] as const) {
    run("ip", ["-n", ns[host], "link", "set", "dev", "lo", "up"])
    run("ip", ["netns", "exec", ns[host], "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
  }
  run("ip", ["-n", ns.a, "route", "add", "default", "via", "10.99.1.1"])
  run("ip", ["-n", ns.b, "route", "add", "default", "via", "10.99.2.1"])
  run("ip", ["netns", "exec", ns.m, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
}

/** Builds a fresh lab (after sweeping stale ones). Pair every `up` with `down` (also in a finalizer). */
export const up = (): Lab => {
  sweepStale()
  const id = `weft${randomBytes(4).readUInt32BE(0).toString(36).slice(0, 5)}-${process.pid}`
  const namespaces = { a: `${id}a`, m: `${id}m`, b: `${id}b` } as const
  const spawned: Array<LabProcess> = []
  let reorder: LabProcess | undefined
  let isDown = false

  const exec = (host: Host, command: string, args: ReadonlyArray<string>, input?: string) =>
    run("ip", ["netns", "exec", namespaces[host], command, ...args], input)

  const spawn = (host: Host, name: string, command: string, args: ReadonlyArray<string>, prefix = "@@weft ") => {
    if (isDown) throw new Error(`lab ${id} is down`)
    const child = spawnChild("ip", ["netns", "exec", namespaces[host], command, ...args], {
      cwd: repoRoot,
      env,
      detached: true,
      stdio: ["pipe", "pipe", "pipe"]
    })
    const started = labProcess(name, child, prefix)
    spawned.push(started)
    return started
  }

  const impair = async (impairment: Impairment) => {
    exec("m", "nft", ["-f", "-"], impairRules(impairment))
    if (impairment.delayMs === 0 && impairment.jitterMs === 0) return
    reorder = spawn("m", "reorder", python, [
      resolve(labDir, "nfq_impair.py"), "--queue", "0",
      "--delay", String(impairment.delayMs), "--jitter", String(impairment.jitterMs), "--seed", String(impairment.seed)
    ], "")
    // The daemon prints bare JSON lines: an empty prefix makes every line a message (or log, if not JSON).
    await reorder.waitFor("ready", 10_000)
    for (const dev of ["ma", "mb"]) {
      exec("m", "iptables", ["-A", "FORWARD", "-i", dev, "-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass"])
    }
  }

  const stopReorder = async (): Promise<ReorderStats> => {
    if (reorder === undefined) return { packets: 0, overtaken: 0, enobufs: 0 }
    killGroup(reorder.child, "SIGTERM")
    const stats = await reorder.waitFor("nfq", 5_000)
    return { packets: Number(stats.packets), overtaken: Number(stats.overtaken), enobufs: Number(stats.enobufs) }
  }

  const down = () => {
    if (isDown) return
    isDown = true
    for (const started of spawned) killGroup(started.child, "SIGKILL")
    for (const host of ["a", "b", "m"] as const) killNamespace(namespaces[host])
    untrack(lab)
  }

  const lab: Lab = {
    id,
    namespaces,
    exec,
    spawn,
    impair,
    counters: () => parseCounters(exec("m", "nft", ["-j", "list", "table", "ip", "weft_impair"])),
    stopReorder,
    down
  }
  track(lab)
  try {
    build(namespaces)
  } catch (error) {
    down()
    throw error
  }
  return lab
}

/** The namespaces of `lab` that still exist (empty after `down`): for tests of the teardown. */
export const namespacesLeft = (lab: Lab): ReadonlyArray<string> =>
  existsSync("/run/netns") ? listNamespaces().filter((name) => Object.values(lab.namespaces).includes(name)) : []
