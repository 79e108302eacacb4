/**
 * The one line a host runs to install an agent from the server
 * (`ironmesh token create --kind join --print-install`).
 *
 * The join token pins the server's root CA by the SHA-256 of its DER. curl
 * cannot pin a CA by hash (`--pinnedpubkey` pins the server's own key, which
 * changes with every serving certificate), so the line carries the pinned
 * root itself: it writes the PEM to a temporary directory and makes curl, and
 * then install.sh (`--ca-file`), trust that root alone. The very first
 * download therefore verifies the server as the agent's enrolment will, and
 * hostname checks stay on (the serving certificate names the advertised host).
 */
import { decodePem } from "../ca/pem.ts";
import { InvalidError } from "../core/errors.ts";
import type { JoinTokenClaims } from "../core/join_token.ts";

async function pinOf(der: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", der));
  return `sha256:${Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** The root among `rootPems` whose fingerprint is the token's pin, as PEM lines. */
export async function pinnedRootLines(
  claims: Pick<JoinTokenClaims, "pin">,
  rootPems: readonly string[],
): Promise<string[]> {
  for (const pem of rootPems) {
    for (const block of decodePem(pem)) {
      if (block.label === "CERTIFICATE" && await pinOf(block.der) === claims.pin) {
        return pem.trim().split(/\r?\n/).map((line) => line.trim()).filter(Boolean);
      }
    }
  }
  throw new InvalidError(
    `The server's root list has no root matching the join token's pin "${claims.pin}": ask the server again, or check that --server names the server that issued the token`,
  );
}

/** What {@link installLine} needs. */
export interface InstallLineInput {
  /** The signed join token. */
  token: string;
  /** The server's TLS base URL (the token's first `srv`). */
  server: string;
  /** The pinned root, as PEM lines. */
  rootPem: readonly string[];
}

/**
 * The line: `curl … -o DIR/install.sh … && sudo sh DIR/install.sh agent …`.
 * Not `curl | sh`: without `pipefail` (not in POSIX `sh`) a refused download
 * would leave `sh` an empty script and the line would succeed. It ends with
 * the installer's arguments, so more (`--no-start`, `--prefix DIR`) can be
 * added at its end. Every value is quoted for `sh`; a PEM line and a JWT hold no
 * quote, and the URL was checked to be a plain https URL.
 */
export function installLine(input: InstallLineInput): string {
  const server = input.server.replace(/\/+$/, "");
  if (!/^https:\/\/[\w.~:@[\]-]+$/.test(server)) {
    throw new InvalidError(
      `Cannot print an install line for server URL "${input.server}": it must be https://HOST:PORT (set the server's --advertise)`,
    );
  }
  const quoted = (s: string) => `'${s}'`;
  return [
    `d=$(mktemp -d) && printf '%s\\n' ${input.rootPem.map(quoted).join(" ")} >"$d/ca.pem" &&`,
    `curl -fsSL --proto '=https' --cacert "$d/ca.pem" -o "$d/install.sh"`,
    `${quoted(`${server}/install.sh`)} &&`,
    `sudo sh "$d/install.sh" agent --ca-file "$d/ca.pem" --base-url ${quoted(`${server}/install`)}`,
    `--server ${quoted(server)} --join-token ${quoted(input.token)}`,
  ].join(" ");
}
