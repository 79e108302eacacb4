/**
 * What every client verb shares: the connection options (`--server`,
 * `--token`, `--token-file`, `--ca-file` and their variables), the client they build, and
 * output as a table, JSON or YAML.
 */
import { Command, Option } from "commander";
import { stringify } from "yaml";
import { ApiClient } from "../client/api_client.ts";
import { InvalidError, UnauthorizedError, UnavailableError } from "../core/errors.ts";

/** Where the client verbs look for the server when neither `--server` nor `IRONMESH_SERVER` is set. */
export const DEFAULT_SERVER = "http://127.0.0.1:15080";

/**
 * The output formats of every verb that prints objects. `wide` is the table with more columns
 * where a kind has them (`get`, `token list`, `drain`), the plain table elsewhere.
 */
export const FORMATS = ["table", "wide", "json", "yaml"] as const;
/** One of {@link FORMATS}. */
export type Format = typeof FORMATS[number];

/** `-o, --output table|wide|json|yaml`, also from `IRONMESH_OUTPUT`; default `table`. */
export function outputOption(): Option {
  return new Option("-o, --output <format>", "Output format").choices(FORMATS).default("table")
    .env("IRONMESH_OUTPUT");
}

/** A verb with the settings the root command has; `addCommand` does not copy them. */
export function verb(name: string): Command {
  return new Command(name)
    .exitOverride()
    .showHelpAfterError("(add --help for usage)");
}

export interface ConnectionOptions {
  server?: string;
  token?: string;
  tokenFile?: string;
  caFile?: string;
}

export function addConnectionOptions(
  command: Command,
  options: { serverDefault: boolean },
): Command {
  const server = new Option("--server <url>", "URL of the Ironmesh server's REST API")
    .env("IRONMESH_SERVER");
  if (options.serverDefault) server.default(DEFAULT_SERVER);
  return command
    .addOption(server)
    .addOption(new Option("--token <token>", "API token to send").env("IRONMESH_TOKEN"))
    .addOption(
      new Option("--token-file <file>", "File holding the API token to send")
        .env("IRONMESH_TOKEN_FILE"),
    )
    .addOption(
      new Option(
        "--ca-file <file>",
        "PEM file of the CA certificates to trust for an https --server (the mesh CA: " +
          "GET /v1/ca/roots?format=pem); default: the system's",
      ).env("IRONMESH_CA_FILE"),
    );
}

/**
 * The token to send: `--token` or the contents of `--token-file`. When both
 * are set, one on the command line beats one from the environment, so a
 * one-off override works in a shell that exports the other.
 */
async function resolveToken(command: Command): Promise<string | undefined> {
  const { token, tokenFile } = command.opts<ConnectionOptions>();
  const direct = token === "" ? undefined : token;
  const file = tokenFile === "" ? undefined : tokenFile;
  if (direct !== undefined && file !== undefined) {
    const directSource = command.getOptionValueSource("token");
    const fileSource = command.getOptionValueSource("tokenFile");
    if (directSource === fileSource) {
      throw new InvalidError(`Options "--token" and "--token-file" cannot be used together`);
    }
    return fileSource === "cli" ? await readTokenFile(file) : direct;
  }
  return file === undefined ? direct : await readTokenFile(file);
}

async function readTokenFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new InvalidError(`Cannot read token file "${file}": ${reason}`);
  }
  const token = text.trim();
  if (token === "") throw new InvalidError(`Token file "${file}" is empty`);
  return token;
}

/**
 * Runs `body` with a client for the command's connection options. A 401 on
 * a call made without any token gets a hint, because forgetting the token is
 * by far the most common cause.
 */
export async function withClient<T>(
  command: Command,
  body: (client: ApiClient) => Promise<T>,
): Promise<T> {
  const { server, caFile } = command.opts<ConnectionOptions>();
  const token = await resolveToken(command);
  const httpClient = caFile === undefined || caFile === "" ? undefined : await trusting(caFile);
  const client = new ApiClient({
    server: server ?? DEFAULT_SERVER,
    ...(token === undefined ? {} : { token }),
    ...(httpClient === undefined
      ? {}
      : { fetch: (input, init) => fetch(input, { ...init, client: httpClient }) }),
  });
  try {
    return await body(client);
  } catch (error) {
    if (error instanceof UnauthorizedError && token === undefined) {
      throw new UnauthorizedError(
        `${error.message} (no token given: pass --token or --token-file, or set IRONMESH_TOKEN)`,
      );
    }
    if (error instanceof UnavailableError && UNTRUSTED.test(error.message)) {
      throw new UnavailableError(
        `${error.message} (${
          httpClient === undefined
            ? "the server's certificate is not from a CA this machine trusts: pass the mesh CA " +
              "with --ca-file or IRONMESH_CA_FILE"
            : `the server's certificate is not from a CA in "${caFile}"`
        }; on the server host, curl -s ${DEFAULT_SERVER}/v1/ca/roots?format=pem > mesh-ca.pem)`,
      );
    }
    throw error;
  } finally {
    httpClient?.close();
  }
}

/** What rustls says, through Deno's `fetch`, of a certificate from an unknown CA. */
const UNTRUSTED = /UnknownIssuer|invalid peer certificate/;

/** An HTTP client that trusts the CA certificates in `file` besides the system's. */
async function trusting(file: string): Promise<Deno.HttpClient> {
  let pem: string;
  try {
    pem = await Deno.readTextFile(file);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new InvalidError(`Cannot read CA file "${file}": ${reason}`);
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new InvalidError(
      `CA file "${file}" holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`,
    );
  }
  try {
    return Deno.createHttpClient({ caCerts: [pem] });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new InvalidError(`CA file "${file}" cannot be used: ${reason}`);
  }
}

export function print(format: Format, value: unknown, tableText: string): void {
  switch (format) {
    case "table":
    case "wide":
      console.log(tableText);
      return;
    case "json":
      console.log(JSON.stringify(value, null, 2));
      return;
    case "yaml":
      console.log(stringify(value).trimEnd());
      return;
  }
}

/** Left-aligned columns separated by three spaces, without trailing blanks. */
export function formatTable(headers: readonly string[], rows: readonly string[][]): string {
  return formatRows([headers, ...rows], columnWidths([headers, ...rows]));
}

/** The width of each column of `rows`: its longest cell, and at least `atLeast`'s. */
export function columnWidths(
  rows: readonly (readonly string[])[],
  atLeast: readonly number[] = [],
): number[] {
  const count = Math.max(atLeast.length, ...rows.map((row) => row.length));
  return Array.from(
    { length: count },
    (_, i) => Math.max(atLeast[i] ?? 0, ...rows.map((row) => row[i]?.length ?? 0)),
  );
}

/** `rows` in columns of `widths`, as {@link formatTable} lays them out. */
export function formatRows(
  rows: readonly (readonly string[])[],
  widths: readonly number[],
): string {
  return rows
    .map((row) => row.map((value, i) => value.padEnd(widths[i] ?? 0)).join("   ").trimEnd())
    .join("\n");
}
