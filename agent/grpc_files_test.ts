import assert from "node:assert/strict";
import { validateBootstrapConfig } from "@grpc/grpc-js-xds/build/src/xds-bootstrap.js";
import { InvalidError } from "../core/errors.ts";
import { GRPC_CERTIFICATE_PROVIDER, serverListenerName } from "../core/grpc_bootstrap.ts";
import { GrpcFiles, grpcFilesDir, resolveGroup } from "./grpc_files.ts";
import type { Identity } from "./identity.ts";

function identity(serial: string): Identity {
  return {
    node: "vm-1",
    identity: "spiffe://ironmesh.local/ns/default/sa/web",
    server: "https://127.0.0.1:1",
    keyPem: `-----BEGIN PRIVATE KEY-----\nkey-${serial}\n-----END PRIVATE KEY-----`,
    certPem: `-----BEGIN CERTIFICATE-----\ncert-${serial}\n-----END CERTIFICATE-----\n`,
    bundlePem: `-----BEGIN CERTIFICATE-----\nroot-${serial}\n-----END CERTIFICATE-----\n`,
    bundleFingerprint: "f",
    leaf: { serial, notBefore: 0, notAfter: 1 } as Identity["leaf"],
  };
}

const mode = async (path: string) => (await Deno.stat(path)).mode! & 0o777;

Deno.test("GrpcFiles.write() writes a bootstrap grpc-js-xds accepts, and the files it names", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = new GrpcFiles({
      dataDir: dir,
      node: "vm-1",
      labels: { region: "eu", zone: "eu-a" },
      refreshIntervalMs: 1_500,
    });
    await files.write(identity("1"), { host: "127.0.0.1", port: 15010 });
    const bootstrap = JSON.parse(await Deno.readTextFile(files.bootstrapPath));
    const info = validateBootstrapConfig(bootstrap);
    assert.equal(info.xdsServers[0]!.server_uri, "127.0.0.1:15010");
    assert.deepEqual(info.node.locality, { region: "eu", zone: "eu-a" });
    const provider = info.certificateProviders[GRPC_CERTIFICATE_PROVIDER]!;
    assert.equal(provider.pluginName, "file_watcher");
    const config = provider.config;
    const credentials = `${grpcFilesDir(dir)}/credentials.pem`;
    assert.deepEqual(config, {
      certificateFile: credentials,
      privateKeyFile: credentials,
      caCertificateFile: `${grpcFilesDir(dir)}/bundle.pem`,
      refreshIntervalMs: 1_500,
    });
    // The name grpc-js-xds asks for when the app binds 0.0.0.0:50051 on this host.
    assert.equal(
      info.serverListenerResourceNameTemplate!.replace("%s", "0.0.0.0:50051"),
      serverListenerName("vm-1", { host: "0.0.0.0", port: 50051 }),
    );
    assert.equal(bootstrap.node.metadata.IRONMESH_PROXY, "proxyless");

    const text = await Deno.readTextFile(credentials);
    assert.ok(text.indexOf("key-1") < text.indexOf("cert-1"), "the key first, then the chain");
    assert.match(await Deno.readTextFile(`${grpcFilesDir(dir)}/bundle.pem`), /root-1/);
    if (Deno.build.os !== "windows") {
      assert.equal(await mode(credentials), 0o600);
      assert.equal(await mode(grpcFilesDir(dir)), 0o700);
      assert.equal(await mode(`${grpcFilesDir(dir)}/bundle.pem`), 0o644);
    }

    // A renewal replaces the files; nothing temporary stays behind.
    await files.write(identity("2"), { host: "127.0.0.1", port: 15010 });
    assert.match(await Deno.readTextFile(credentials), /key-2[\s\S]*cert-2/);
    const names = [...Deno.readDirSync(grpcFilesDir(dir))].map((e) => e.name).sort();
    assert.deepEqual(names, ["bundle.pem", "credentials.pem"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("GrpcFiles.write() with a key group makes the key readable by that group only", {
  ignore: Deno.build.os === "windows",
}, async () => {
  const dir = await Deno.makeTempDir();
  try {
    const gid = Deno.gid()!;
    const files = new GrpcFiles({
      dataDir: dir,
      node: "vm-1",
      labels: {},
      refreshIntervalMs: 5_000,
      keyGroup: gid,
    });
    await files.write(identity("1"), { host: "127.0.0.1", port: 15010 });
    const credentials = `${grpcFilesDir(dir)}/credentials.pem`;
    assert.equal(await mode(credentials), 0o640);
    assert.equal((await Deno.stat(credentials)).gid, gid);
    assert.equal(await mode(grpcFilesDir(dir)), 0o750);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resolveGroup() reads a group name from the group file, and names an unknown one", async () => {
  const file = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(file, "root:x:0:\ngrpc-apps:x:1234:alice,bob\n");
    assert.equal(await resolveGroup("grpc-apps", file), 1234);
    assert.equal(await resolveGroup(77, file), 77);
    await assert.rejects(
      resolveGroup("nobody-here", file),
      (e: Error) => e instanceof InvalidError && /"nobody-here"/.test(e.message),
    );
  } finally {
    await Deno.remove(file);
  }
});
