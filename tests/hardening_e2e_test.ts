/**
 * Bad input and loose ends found by the abuse battery of issue 14 item 9, each
 * against the real program: node names checked per DNS label and capped at a
 * certificate Common Name's 64 characters, a policy whose `metadata` is not an
 * object, a query parameter on `/v1/namespaces`, the database file's mode, and
 * `DELETE /v1/nodes/X` for a node that enrolled but never registered.
 */
import assert from "node:assert/strict";
import { makeCsr } from "../ca/_testing.ts";
import { ServerProc, tempDir } from "./harness.ts";

const LABEL_64 = "a".repeat(64);
/** 70 characters, each label within 63: a valid DNS name, too long for a Common Name. */
const NAME_70 = `${"a".repeat(35)}.${"b".repeat(34)}`;

Deno.test("the server refuses bad node names, non-object policy metadata and unknown namespace parameters; its database is 0600", async () => {
  const dir = await tempDir("hardening");
  const server = await ServerProc.start(dir);
  try {
    // Node names: per label, and at most 64 characters.
    for (
      const [name, message] of [
        [LABEL_64, /Each label \(the parts between dots\) must be at most 63 characters/],
        [NAME_70, /Must be at most 64 characters: a node name is its certificate's Common Name/],
      ] as const
    ) {
      const token = await server.api("POST", "/v1/tokens", {
        body: { kind: "join", serviceAccount: "web", node: name },
      });
      assert.equal(token.status, 422, JSON.stringify(token.body));
      const problem = token.body.problems.find((p: { pointer: string }) => p.pointer === "/node");
      assert.match(problem?.message ?? "", message, JSON.stringify(token.body));

      const path = await server.api("GET", `/v1/nodes/${name}`);
      assert.equal(path.status, 422, JSON.stringify(path.body));
      assert.deepEqual(
        path.body.problems.map((p: { in: string; pointer: string }) => [p.in, p.pointer]),
        [["path", "/name"]],
      );
    }
    // Enrolment refuses a name the certificate could not carry, before signing.
    const join = await server.joinToken();
    const enrol = await server.api("POST", "/v1/ca/enrol", {
      token: null,
      body: { token: join, csr: await makeCsr(), node: NAME_70 },
    });
    assert.equal(enrol.status, 422, JSON.stringify(enrol.body));
    assert.ok(enrol.body.problems.some((p: { pointer: string }) => p.pointer === "/node"));

    // A policy whose metadata is not an object: 422 at /metadata.
    for (const metadata of ["echo", 42, ["echo"], null]) {
      const res = await server.api("PUT", "/v1/policies/TrafficRoute/default/echo", {
        body: { metadata, spec: { service: "echo", rules: [] } },
      });
      assert.equal(res.status, 422, `${JSON.stringify(metadata)}: ${JSON.stringify(res.body)}`);
      assert.deepEqual(res.body.problems, [{ pointer: "/metadata", message: "Must be an object" }]);
    }
    const notObject = await server.api("PUT", "/v1/policies/TrafficRoute/default/echo", {
      body: ["x"],
    });
    assert.equal(notObject.status, 422);
    assert.deepEqual(notObject.body.problems, [{ pointer: "", message: "Must be an object" }]);

    // /v1/namespaces takes no parameters, and says so like the other lists.
    const ns = await server.api("GET", "/v1/namespaces?namepsace=default");
    assert.equal(ns.status, 422, JSON.stringify(ns.body));
    assert.deepEqual(ns.body.problems, [{
      in: "query",
      pointer: "/namepsace",
      message: 'Unknown query parameter "namepsace"',
    }]);
    assert.equal((await server.api("GET", "/v1/namespaces")).status, 200);

    // The database, created in a directory that already existed, is readable by the owner only.
    for (const file of ["ironmesh.db", "ironmesh.db-wal"]) {
      const mode = (await Deno.stat(`${dir}/${file}`)).mode! & 0o777;
      assert.equal(mode.toString(8), "600", file);
    }
  } finally {
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("DELETE /v1/nodes/X of a node that enrolled but never registered decommissions it (204), as documented", async () => {
  const dir = await tempDir("decommission");
  const server = await ServerProc.start(dir);
  try {
    const join = await server.joinToken();
    const enrol = await server.api("POST", "/v1/ca/enrol", {
      token: null,
      body: { token: join, csr: await makeCsr(), node: "vm-new" },
    });
    assert.equal(enrol.status, 200, JSON.stringify(enrol.body));
    assert.equal((await server.api("GET", "/v1/nodes/vm-new")).status, 404, "never registered");

    const removed = await server.api("DELETE", "/v1/nodes/vm-new");
    assert.equal(removed.status, 204, JSON.stringify(removed.body));
    assert.match(server.proc.output, /Certificates revoked/);
    // Nothing left to decommission: now it is unknown.
    assert.equal((await server.api("DELETE", "/v1/nodes/vm-new")).status, 404);
    assert.equal((await server.api("DELETE", "/v1/nodes/vm-never")).status, 404);

    // The documentation says the same.
    const docs = await Deno.readTextFile(new URL("../docs/rest-api.md", import.meta.url));
    assert.match(docs, /enrolled but is not registered[^]*decommissioned all the same: 204/);
  } finally {
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
