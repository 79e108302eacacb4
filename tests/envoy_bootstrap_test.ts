/**
 * The Envoy bootstrap the agent writes, checked against Envoy's own protobuf
 * schema with the strict codec: no Envoy binary runs here, so an unknown
 * field, a wrong type or a misspelt enum must fail this test instead.
 */
import assert from "node:assert/strict";
import { envoyBootstrap } from "../core/envoy_bootstrap.ts";
import { decodeStrict, encodeStrict } from "../xds/proto/codec.ts";
import { violations } from "../xds/proto/validate.ts";

const BOOTSTRAP = "envoy.config.bootstrap.v3.Bootstrap";

Deno.test("the agent's Envoy bootstrap is a valid envoy.config.bootstrap.v3.Bootstrap", () => {
  for (
    const labels of [{ region: "eu-west-1", zone: "eu-west-1a", version: "v1" }, {}]
  ) {
    const bootstrap = envoyBootstrap({
      node: "vm-1",
      labels,
      xds: { host: "127.0.0.1", port: 15010 },
    });
    const bytes = encodeStrict(BOOTSTRAP, bootstrap);
    const decoded = decodeStrict(BOOTSTRAP, bytes);
    // Everything survives the round trip: no key was dropped as unknown.
    assert.deepEqual(decoded, bootstrap);
    // And Envoy's own validation rules (protoc-gen-validate) hold: Envoy would not start otherwise.
    assert.deepEqual(violations(BOOTSTRAP, decoded), []);
  }
  const decoded = decodeStrict(
    BOOTSTRAP,
    encodeStrict(
      BOOTSTRAP,
      envoyBootstrap({ node: "vm-1", labels: { zone: "z" }, xds: { host: "127.0.0.1", port: 1 } }),
    ),
    // deno-lint-ignore no-explicit-any -- a decoded message of many shapes
  ) as Record<string, any>;
  assert.equal(decoded.dynamic_resources.ads_config.api_type, "GRPC");
  assert.equal(decoded.static_resources.clusters[0].name, "xds");
  assert.deepEqual(decoded.node.locality, { zone: "z" });
  // Envoy's default limit (100) refuses `[a-z]{100}` and NACKs the route table that holds it;
  // the runtime key is read by Envoy's source/common/common/regex.cc (CompiledGoogleReMatcher).
  assert.deepEqual(decoded.layered_runtime.layers[0].static_layer, {
    "re2.max_program_size.error_level": 32768,
  });
  assert.deepEqual(decoded.layered_runtime.layers[1], { name: "admin", admin_layer: {} });
});

Deno.test("the strict codec would catch a mistake in the bootstrap", () => {
  const bootstrap = envoyBootstrap({
    node: "vm-1",
    labels: {},
    xds: { host: "127.0.0.1", port: 1 },
  });
  assert.throws(() => encodeStrict(BOOTSTRAP, { ...bootstrap, admin_typo: {} }));
  const dynamic = bootstrap.dynamic_resources as Record<string, Record<string, unknown>>;
  assert.throws(() =>
    encodeStrict(BOOTSTRAP, {
      ...bootstrap,
      dynamic_resources: { ...dynamic, ads_config: { ...dynamic.ads_config, api_type: "GRPCX" } },
    })
  );
});
