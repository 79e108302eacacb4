/** `ironmesh version`: this program's version and, with `--server`, the server's. */
import type { Command } from "commander";
import { ServerError } from "../client/api_client.ts";
import { VERSION } from "../core/version.ts";
import {
  addConnectionOptions,
  type ConnectionOptions,
  verb,
  withClient,
} from "./client_support.ts";

/** The `version` verb. */
export function versionCommand(): Command {
  const command = verb("version")
    .description("Print the version of this program and, with --server, of the server");
  addConnectionOptions(command, { serverDefault: false });
  return command.action(async () => {
    console.log(`ironmesh ${VERSION}`);
    if (command.opts<ConnectionOptions>().server === undefined) return;
    const answer = await withClient(
      command,
      (client) => client.request<{ version?: unknown }>("GET", "/v1/version"),
    );
    if (typeof answer?.version !== "string") {
      throw new ServerError(`The server's answer to "GET /v1/version" holds no version`, 200);
    }
    console.log(`server ${answer.version}`);
  });
}
