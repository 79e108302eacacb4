/**
 * A client certificate that chains to the mesh's CA but names another trust
 * domain is refused on REST calls too, not only for renewal (issue 14 item 9).
 * The certificates are signed with openssl by the server's own intermediate,
 * as a CA shared with another mesh could; one of our trust domain, signed the
 * same way, is accepted, so the trust domain is what is refused.
 */
import assert from "node:assert/strict";
import { ServerProc, tempDir } from "./harness.ts";

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
}

/** A client certificate for node `node` with SPIFFE ID `uri`, signed by the server's intermediate. */
async function clientCertificate(ca: string, work: string, node: string, uri: string) {
  await openssl(
    ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${node}.key`],
    work,
  );
  await openssl([
    "req",
    "-new",
    "-key",
    `${node}.key`,
    "-subj",
    `/CN=${node}`,
    "-out",
    `${node}.csr`,
  ], work);
  await Deno.writeTextFile(
    `${work}/${node}.ext`,
    `subjectAltName=${
      uri.startsWith("spiffe:") ? "URI" : "DNS"
    }:${uri}\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n`,
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    `${node}.csr`,
    "-CA",
    `${ca}/intermediate.crt`,
    "-CAkey",
    `${ca}/intermediate.key`,
    "-CAcreateserial",
    "-days",
    "1",
    "-extfile",
    `${node}.ext`,
    "-out",
    `${node}.crt`,
  ], work);
  const chain = (await Deno.readTextFile(`${work}/${node}.crt`)) +
    (await Deno.readTextFile(`${ca}/intermediate.crt`));
  return { cert: chain, key: await Deno.readTextFile(`${work}/${node}.key`) };
}

Deno.test("a client certificate of another trust domain is refused for REST calls", async () => {
  const dir = await tempDir("foreign-td");
  const work = await tempDir("foreign-td-work");
  const server = await ServerProc.start(dir);
  try {
    const ca = `${dir}/ca/gen-1`;
    const caCerts = [await Deno.readTextFile(`${ca}/root.crt`)];
    const call = async (cert: { cert: string; key: string }) => {
      const client = Deno.createHttpClient({ ...cert, caCerts });
      try {
        const res = await fetch(`${server.tlsUrl}/v1/nodes/vm-x`, { client });
        return { status: res.status, body: await res.json() };
      } finally {
        client.close();
      }
    };
    const foreign = await call(
      await clientCertificate(ca, work, "vm-x", "spiffe://other.org/ns/default/sa/web"),
    );
    assert.equal(foreign.status, 401, JSON.stringify(foreign.body));
    assert.match(
      foreign.body.detail,
      /identity "spiffe:\/\/other\.org\/ns\/default\/sa\/web" is of trust domain "other\.org", not this mesh's "ironmesh\.local"/,
    );
    const ours = await call(
      await clientCertificate(ca, work, "vm-y", "spiffe://ironmesh.local/ns/default/sa/web"),
    );
    assert.notEqual(ours.status, 401, JSON.stringify(ours.body));
  } finally {
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(work, { recursive: true });
  }
});
