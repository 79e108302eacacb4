import { z } from "zod";
import { parseHostPort } from "./address.ts";
import { durationSchema, formatDuration } from "./duration.ts";
import { LEVELS } from "./log.ts";
import { subdomainName } from "./names.ts";

const address = z.string().superRefine((text, ctx) => {
  const parsed = parseHostPort(text);
  if (typeof parsed === "string") ctx.addIssue({ code: "custom", message: parsed });
});

/**
 * The server's settings. Each has a flag and an `IRONMESH_*` variable; a
 * `--config` file (YAML) may hold any of them. Precedence: flag, then
 * environment, then file, then the default below.
 */
export const serverConfigSchema = z.strictObject({
  /** Where the database, admin token and `server.json` live. Default `./ironmesh-data`. */
  dataDir: z.string().min(1).default("./ironmesh-data"),
  /** REST API address; port 0 picks a free port. Default `127.0.0.1:15080`. */
  httpAddr: address.default("127.0.0.1:15080"),
  /** gRPC address (health now; xDS and the agent channel later). Default `127.0.0.1:15012`. */
  grpcAddr: address.default("127.0.0.1:15012"),
  /** SPIFFE trust domain of the mesh. Default `ironmesh.local`. */
  trustDomain: subdomainName.default("ironmesh.local"),
  /** Storage URL: `sqlite:PATH` (default `sqlite:DATA_DIR/ironmesh.db`). */
  store: z.string().min(1).optional(),
  /** A node silent this long is removed with its instances. Default `72h`. */
  reapAfter: durationSchema({ min: 1_000 }).default(72 * 3_600_000),
  /** Log level: debug, info, warn or error. Default `info`. */
  logLevel: z.enum(LEVELS).default("info"),
});

/** Parsed {@link serverConfigSchema}. */
export type ServerConfig = z.output<typeof serverConfigSchema>;

/** The flag name of each setting, for messages and `--print-config`. */
export const SERVER_FLAGS: Record<keyof ServerConfig, string> = {
  dataDir: "--data-dir",
  httpAddr: "--http-addr",
  grpcAddr: "--grpc-addr",
  trustDomain: "--trust-domain",
  store: "--store",
  reapAfter: "--reap-after",
  logLevel: "--log-level",
};

/** The effective configuration as a plain object for `--print-config` (durations as text). */
export function describeServerConfig(config: ServerConfig): Record<string, unknown> {
  return { ...config, reapAfter: formatDuration(config.reapAfter) };
}
