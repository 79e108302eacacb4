/**
 * End-to-end harness: starts the real `ironmesh` program (server and agents)
 * and the sample app as separate processes on loopback, exactly as a user
 * would, and offers small helpers to talk to them.
 */
import { fileURLToPath } from "node:url";
import { DEBUG_CHECKS_ENV } from "../core/server_config.ts";

/** The repository root. */
export const ROOT = fileURLToPath(new URL("..", import.meta.url));
const MAIN = `${ROOT}cmd/main.ts`;
/** What the server logs when a debug check (`IRONMESH_DEBUG_CHECKS`) finds a bug. */
const DEBUG_CHECK_FAILED = /Inconsistent xDS snapshot|The mesh view differs from the store/;

/** A child process (Deno by default) with its output kept for failure messages. */
export class Proc {
  readonly #child: Deno.ChildProcess;
  readonly #lines: string[] = [];
  readonly #listeners = new Set<(line: string) => void>();
  readonly status: Promise<Deno.CommandStatus>;
  #done = false;

  constructor(
    readonly name: string,
    args: string[],
    env: Record<string, string> = {},
    command: string = Deno.execPath(),
  ) {
    this.#child = new Deno.Command(command, {
      args,
      cwd: ROOT,
      env: { NO_COLOR: "1", ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      let rest = "";
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        const parts = (rest + chunk).split("\n");
        rest = parts.pop()!;
        for (const line of parts) {
          // A debug check that fails (IRONMESH_DEBUG_CHECKS) is printed at once, whatever the test.
          if (DEBUG_CHECK_FAILED.test(line)) console.error(`${this.name}: ${line}`);
          this.#lines.push(line);
          for (const fn of this.#listeners) fn(line);
        }
      }
      if (rest) this.#lines.push(rest);
    };
    const pumps = Promise.all([pump(this.#child.stdout), pump(this.#child.stderr)]);
    this.status = Promise.all([this.#child.status, pumps]).then(([s]) => {
      this.#done = true;
      return s;
    });
  }

  /** The process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Everything the process printed so far. */
  get output(): string {
    return this.#lines.join("\n");
  }

  /** Resolves with the first line (printed so far or later) that matches. */
  waitForLine(pattern: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
    for (const line of this.#lines) {
      const m = line.match(pattern);
      if (m) return Promise.resolve(m);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#listeners.delete(listener);
        reject(
          new Error(
            `${this.name}: no line matching ${pattern} within ${timeoutMs}ms:\n${this.output}`,
          ),
        );
      }, timeoutMs);
      const listener = (line: string) => {
        const m = line.match(pattern);
        if (m) {
          clearTimeout(timer);
          this.#listeners.delete(listener);
          resolve(m);
        }
      };
      this.#listeners.add(listener);
      this.status.then(() => {
        if (this.#listeners.has(listener)) {
          clearTimeout(timer);
          this.#listeners.delete(listener);
          reject(new Error(`${this.name} exited before printing ${pattern}:\n${this.output}`));
        }
      });
    });
  }

  /** Sends a signal (if still running) and waits for the exit. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    if (!this.#done) {
      try {
        this.#child.kill(signal);
      } catch {
        // Already gone between the check and the kill.
      }
    }
    return await this.status;
  }
}

/**
 * `--ca-key-passphrase-file FILE` with `passphrase` in a new temporary file: servers on
 * PostgreSQL keep their CA in the database under it and refuse to start without one.
 */
export async function caPassphraseArgs(passphrase = "e2e passphrase"): Promise<string[]> {
  const file = await Deno.makeTempFile({ prefix: "ironmesh-passphrase-" });
  await Deno.writeTextFile(file, passphrase + "\n");
  return ["--ca-key-passphrase-file", file];
}

/** A temporary directory removed by {@link TempDir.remove}. */
export async function tempDir(prefix: string): Promise<string> {
  return await Deno.makeTempDir({ prefix: `ironmesh-${prefix}-` });
}

/** Polls `fn` until it returns a truthy value, or fails with `what` after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Timed out after ${timeoutMs}ms waiting for ${what}${last ? `: ${last}` : ""}`);
}

/** The arguments of `deno` that run the program (`cmd/main.ts`) with `args`. */
export function denoArgs(args: string[]): string[] {
  return ["run", "-A", MAIN, ...args];
}

/**
 * The program's arguments for `ironmesh server` on `dataDir` with every port
 * on 0 (the ports taken are in `server.json`); give them to {@link denoArgs},
 * the launcher or `deno task ironmesh`.
 */
export function serverArgs(dataDir: string): string[] {
  return [
    "server",
    "--data-dir",
    dataDir,
    "--http-addr",
    "127.0.0.1:0",
    "--grpc-addr",
    "127.0.0.1:0",
    "--https-addr",
    "127.0.0.1:0",
  ];
}

/** A running `ironmesh server` process. */
export class ServerProc {
  private constructor(
    readonly proc: Proc,
    readonly dataDir: string,
    /** The plain-HTTP loopback API, for automation in tests. */
    readonly url: string,
    /** The TLS port agents enrol with and talk mTLS to. */
    readonly tlsUrl: string,
    readonly adminToken: string,
  ) {}

  /** Starts `ironmesh server` on port 0 with `dataDir` and waits until it serves. */
  static async start(dataDir: string, extraArgs: string[] = []): Promise<ServerProc> {
    await Deno.remove(`${dataDir}/server.json`).catch(() => {});
    // With the debug checks: the mesh view against the store, snapshots against Envoy's rules.
    const proc = new Proc("server", denoArgs([...serverArgs(dataDir), ...extraArgs]), {
      [DEBUG_CHECKS_ENV]: "1",
    });
    await proc.waitForLine(/server ready/);
    const info = JSON.parse(await Deno.readTextFile(`${dataDir}/server.json`));
    const token = (await Deno.readTextFile(`${dataDir}/admin.token`)).trim();
    return new ServerProc(proc, dataDir, `http://${info.http}`, `https://${info.https}`, token);
  }

  /** Calls the REST API with the admin token (or `token`). */
  async api(
    method: string,
    path: string,
    options: { body?: unknown; token?: string | null; headers?: Record<string, string> } = {},
    // deno-lint-ignore no-explicit-any -- response bodies of every shape; the tests assert on them
  ): Promise<{ status: number; body: any; headers: Headers }> {
    const headers: Record<string, string> = { ...options.headers };
    const token = options.token === undefined ? this.adminToken : options.token;
    if (token) headers.authorization = `Bearer ${token}`;
    let body: string | undefined;
    if (options.body !== undefined) {
      body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
      headers["content-type"] ??= "application/json";
    }
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body } : {}),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // Not JSON (e.g. /metrics); keep the text.
    }
    return { status: res.status, body: parsed, headers: res.headers };
  }

  /** Creates an API token with `role` and returns its secret. */
  async token(role: string, extra: Record<string, unknown> = {}): Promise<string> {
    const res = await this.api("POST", "/v1/tokens", { body: { role, ...extra } });
    if (res.status !== 201) throw new Error(`Token creation failed: ${JSON.stringify(res.body)}`);
    return res.body.token;
  }

  /** Creates a join token and returns it. */
  async joinToken(extra: Record<string, unknown> = {}): Promise<string> {
    const res = await this.api("POST", "/v1/tokens", {
      body: { kind: "join", serviceAccount: "web", ...extra },
    });
    if (res.status !== 201) {
      throw new Error(`Join token creation failed: ${JSON.stringify(res.body)}`);
    }
    return res.body.token;
  }

  /** The instance with `id`, or `null`. */
  async instance(id: string): Promise<{ health: string; [k: string]: unknown } | null> {
    const res = await this.api("GET", `/v1/instances/${id}`);
    return res.status === 200 ? res.body : null;
  }
}

/** Options of {@link startAgent}. */
export interface AgentStart {
  /** Join token for the first start; omit to resume with the identity in `dataDir`. */
  joinToken?: string;
  /** Reuse this data directory (a restart); default: a new one. */
  dataDir?: string;
  extraArgs?: string[];
  /** Extra environment variables, e.g. `PATH`. */
  env?: Record<string, string>;
}

/** Starts `ironmesh agent` with a config file written from `config` (YAML text). */
export async function startAgent(
  name: string,
  server: ServerProc,
  config: string,
  options: AgentStart = {},
): Promise<{ proc: Proc; dataDir: string }> {
  const dataDir = options.dataDir ?? await tempDir(`agent-${name}`);
  await Deno.writeTextFile(`${dataDir}/agent.yaml`, config);
  const proc = new Proc(
    `agent ${name}`,
    denoArgs([
      "agent",
      "--server",
      server.tlsUrl,
      "--config",
      `${dataDir}/agent.yaml`,
      "--data-dir",
      dataDir,
      // Free ports, so agents of parallel tests never fight over the defaults; extraArgs win.
      "--dns-addr",
      "127.0.0.1:0",
      "--metrics-addr",
      "127.0.0.1:0",
      ...(options.joinToken ? ["--join-token", options.joinToken] : []),
      ...(options.extraArgs ?? []),
    ]),
    options.env,
  );
  return { proc, dataDir };
}

/** Starts the sample app (`examples/hello.ts`) on a free port and returns it with its port. */
export async function startApp(): Promise<{ proc: Proc; port: number }> {
  const proc = new Proc("app", ["run", "--allow-net", `${ROOT}examples/hello.ts`, "0"]);
  const m = await proc.waitForLine(/hello listening on 127\.0\.0\.1:(\d+)/);
  return { proc, port: Number(m[1]) };
}

/** Runs the `ironmesh` CLI once and returns its exit code and output. */
export async function runCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: denoArgs(args),
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
