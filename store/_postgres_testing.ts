/**
 * Throwaway PostgreSQL clusters for tests: `initdb` into a temporary
 * directory, `postgres` on a free loopback port, removed at the end. Nothing
 * relies on a system service. PostgreSQL refuses to run as root, so when the
 * tests run as root (CI does) the server runs as the `postgres` user that
 * Debian's package creates.
 *
 * One cluster per test file ({@link sharedCluster}), one database per test
 * ({@link TestCluster.createDatabase}). If the test process dies before it
 * could stop its cluster, a watchdog shell next to the server stops it and
 * removes its directory, so no `postgres` outlives the run.
 */
import postgres from "postgres";

/** A running throwaway cluster. */
export interface TestCluster {
  /** The loopback port it listens on. */
  readonly port: number;
  /** The URL of database `name`, as `--store` takes it. */
  url(name: string): string;
  /** Creates an empty database and returns its URL. */
  createDatabase(): Promise<string>;
  /** Runs `fn` with a connection to the `postgres` database, closed afterwards. */
  withAdmin<T>(fn: (sql: postgres.Sql) => Promise<T>): Promise<T>;
  /** Ends every connection to database `name` from the server side, as a crash or failover would. */
  dropConnections(name: string, where?: string): Promise<number>;
  /** Stops the server (immediately, as a crash would), keeping its data. */
  stop(): Promise<void>;
  /** Starts it again on the same port after {@link stop}. */
  start(): Promise<void>;
  /** Stops the server and removes its directory. */
  remove(): void;
}

/** Where Debian's `postgresql` package puts the server programs. */
const DEBIAN_BIN = "/usr/lib/postgresql";
/** The unprivileged account the server runs as when we are root. */
const SERVER_USER = "postgres";
/**
 * Settings for a throwaway cluster: no fsync (a machine crash may lose it),
 * but commits are still written before they are acknowledged, so tests that
 * crash the server itself see what a real one keeps.
 */
const SERVER_SETTINGS = [
  "listen_addresses=127.0.0.1",
  "fsync=off",
  "full_page_writes=off",
  "shared_buffers=16MB",
  "max_connections=200",
];

/**
 * Stops the server once the test process is gone. `$1` is that process,
 * `$2` the cluster's directory; the rest is the server's command line.
 */
const WATCHDOG = `
parent=$1 root=$2; shift 2
"$@" >>"$root/postgres.log" 2>&1 &
pg=$!
while kill -0 "$parent" 2>/dev/null && kill -0 "$pg" 2>/dev/null; do sleep 1; done
kill -QUIT "$pg" 2>/dev/null
wait "$pg"
kill -0 "$parent" 2>/dev/null || rm -rf "$root"
`;

/** The directory holding `initdb`, `pg_ctl` and `postgres`: Debian's newest, else `PATH`'s. */
async function binDir(): Promise<string> {
  const versions: number[] = [];
  try {
    for await (const entry of Deno.readDir(DEBIAN_BIN)) {
      if (/^\d+$/.test(entry.name)) versions.push(Number(entry.name));
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  for (const version of versions.sort((a, b) => b - a)) {
    const dir = `${DEBIAN_BIN}/${version}/bin`;
    if (await exists(`${dir}/initdb`)) return dir;
  }
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir && await exists(`${dir}/initdb`)) return dir;
  }
  throw new Error(
    `PostgreSQL's server programs (initdb, postgres) are not in ${DEBIAN_BIN}/*/bin nor on PATH: install Debian's postgresql package (.ci/run does)`,
  );
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The command prefix that runs a program as the server's user (none unless we are root). */
function asServerUser(): string[] {
  return Deno.uid() === 0
    ? ["setpriv", `--reuid=${SERVER_USER}`, `--regid=${SERVER_USER}`, "--init-groups", "--"]
    : [];
}

async function run(argv: string[], what: string): Promise<void> {
  const [program, ...args] = argv;
  const out = await new Deno.Command(program!, { args, stdin: "null" }).output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr) || new TextDecoder().decode(out.stdout);
    throw new Error(`${what} failed (exit ${out.code}): ${text.trim()}`);
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Initialises and starts a new cluster. */
export async function startCluster(): Promise<TestCluster> {
  const bin = await binDir();
  const root = await Deno.makeTempDir({ prefix: "ironmesh-pg-" });
  const data = `${root}/data`;
  const as = asServerUser();
  try {
    if (as.length > 0) await run(["chown", `${SERVER_USER}:`, root], "chown");
    await run(
      [...as, `${bin}/initdb`, "-D", data, "-A", "trust", "-U", "postgres", "-N", "-E", "UTF8"],
      "initdb",
    );
  } catch (error) {
    await Deno.remove(root, { recursive: true });
    throw error;
  }
  let port = 0;
  let running = false;
  let databases = 0;

  const url = (name: string) => `postgres://postgres@127.0.0.1:${port}/${name}`;
  const withAdmin = async <T>(fn: (sql: postgres.Sql) => Promise<T>): Promise<T> => {
    const sql = postgres(url("postgres"), { max: 1, onnotice: () => {} });
    try {
      return await fn(sql);
    } finally {
      await sql.end();
    }
  };

  /** Starts the server on `port` and waits until it answers; false if the port was taken. */
  const launch = async (): Promise<boolean> => {
    const settings = SERVER_SETTINGS.flatMap((s) => ["-c", s]);
    const server = [`${bin}/postgres`, "-D", data, "-p", String(port), "-k", root, ...settings];
    const child = new Deno.Command("sh", {
      args: ["-c", WATCHDOG, "watchdog", String(Deno.pid), root, ...as, ...server],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    child.unref();
    let exited = false;
    child.status.then(() => exited = true);
    for (let i = 0; i < 200 && !exited; i++) {
      const ready = await withAdmin((sql) => sql`SELECT 1`).then(() => true, () => false);
      if (ready) return true;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const log = await Deno.readTextFile(`${root}/postgres.log`).catch(() => "");
    if (exited && /could not bind|Address already in use/.test(log)) return false;
    throw new Error(`PostgreSQL did not start in ${root}: ${log.trim().split("\n").slice(-5)}`);
  };

  const stop = () => {
    if (!running) return;
    running = false;
    const [program, ...args] = [...as, `${bin}/pg_ctl`, "-D", data, "-m", "immediate", "stop"];
    new Deno.Command(program!, { args, stdin: "null", stdout: "null", stderr: "null" })
      .outputSync();
  };

  const start = async () => {
    for (let attempt = 0; attempt < 5; attempt++) {
      port ||= freePort();
      if (await launch()) {
        running = true;
        return;
      }
      port = 0;
    }
    throw new Error("PostgreSQL found no free loopback port in 5 attempts");
  };

  await start();
  return {
    get port() {
      return port;
    },
    url,
    withAdmin,
    async createDatabase() {
      const name = `test_${++databases}`;
      await withAdmin((sql) => sql.unsafe(`CREATE DATABASE ${name}`));
      return url(name);
    },
    dropConnections(name, where = "true") {
      return withAdmin(async (sql) =>
        (await sql.unsafe(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND (${where})`,
          [name],
        )).length
      );
    },
    stop() {
      stop();
      return Promise.resolve();
    },
    start,
    remove() {
      stop();
      Deno.removeSync(root, { recursive: true });
    },
  };
}

let shared: Promise<TestCluster> | undefined;

/**
 * The cluster of this test file: started by the first call (at the top of
 * the file, outside any test, so no test sees it as a leaked resource) and
 * removed when the file's tests end.
 */
export function sharedCluster(): Promise<TestCluster> {
  shared ??= startCluster().then((cluster) => {
    addEventListener("unload", () => cluster.remove());
    return cluster;
  });
  return shared;
}
