/**
 * Why `@bufbuild/protobuf` does not replace the strict codec
 * (`xds/proto/codec.ts`), as assertions on the library: each one is a
 * contract of the codec that `xds/proto/codec_test.ts` pins and the library's
 * `fromJson`/`toJson` does not keep. When one of these fails, the library has
 * changed and the decision (docs/architecture.md) is worth taking again.
 */
import { fromBinary, fromJson, type JsonValue, toBinary, toJson } from "@bufbuild/protobuf";
import assert from "node:assert/strict";
import { typeUrl } from "../../core/xds_type_urls.ts";
import { decodeStrict, encodeStrict } from "../../xds/proto/codec.ts";
import { bufRegistry } from "./codec_registry.ts";

const registry = bufRegistry();
const LISTENER = "envoy.config.listener.v3.Listener";
const CLUSTER = "envoy.config.cluster.v3.Cluster";

function bufEncode(typeName: string, json: JsonValue): Uint8Array {
  const schema = registry.getMessage(typeName)!;
  return toBinary(schema, fromJson(schema, json, { registry }));
}

function bufError(typeName: string, json: JsonValue): string {
  try {
    bufEncode(typeName, json);
  } catch (e) {
    return (e as Error).message;
  }
  return "accepted";
}

Deno.test("@bufbuild/protobuf takes a port given as a string, which the strict codec refuses", () => {
  const listener = { address: { socket_address: { port_value: "80" } } };
  assert.equal(bufError(LISTENER, listener), "accepted");
  assert.throws(() => encodeStrict(LISTENER, listener), /expected uint32, got "80"/);
});

Deno.test("@bufbuild/protobuf names the message of an unknown field but not where it sits", () => {
  // Which of a listener's filters holds the typo is what a policy author needs to know.
  const listener = {
    filter_chains: [{
      filters: [{
        name: "tcp",
        typed_config: {
          "@type": typeUrl("envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"),
          stat_prefx: "x",
        },
      }],
    }],
  };
  const theirs = bufError(LISTENER, listener);
  assert.match(theirs, /key "stat_prefx" is unknown/);
  assert.doesNotMatch(theirs, /filter_chains/);
  assert.throws(() => encodeStrict(LISTENER, listener), /at \/filter_chains\/0\/filters\/0\//);
});

Deno.test("@bufbuild/protobuf decodes 64-bit integers as strings, not the canonical numbers", () => {
  const bytes = encodeStrict(CLUSTER, { ring_hash_lb_config: { minimum_ring_size: 1024 } });
  const schema = registry.getMessage(CLUSTER)!;
  const theirs = toJson(schema, fromBinary(schema, bytes), { registry, useProtoFieldName: true });
  assert.deepEqual(theirs, { ring_hash_lb_config: { minimum_ring_size: "1024" } });
  assert.deepEqual(decodeStrict(CLUSTER, bytes), {
    ring_hash_lb_config: { minimum_ring_size: 1024 },
  });
});
