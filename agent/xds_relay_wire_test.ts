import assert from "node:assert/strict";
// Tests may reach sideways: the strict codec checks the hand-written wire format against
// Envoy's own descriptor.
import { decodeStrict, encodeStrict } from "../xds/proto/codec.ts";
import {
  decodeDeltaRequest,
  decodeDeltaResponse,
  decodeSotwRequest,
  decodeSotwResponse,
  encodeAny,
  encodeDeltaRequest,
  encodeDeltaResource,
  encodeDeltaResponse,
  encodeSotwRequest,
  encodeSotwResponse,
  resourceName,
} from "./xds_relay_wire.ts";

const PKG = "envoy.service.discovery.v3.";
const LDS = "type.googleapis.com/envoy.config.listener.v3.Listener";
const EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
const NODE = { id: "vm-1", cluster: "vm-1", metadata: { IRONMESH_PROXY: "sidecar" } };

/** The `Any` bytes of one resource, as the strict encoder writes them inside a response. */
function anyOf(resource: Record<string, unknown>): Uint8Array {
  const bytes = encodeStrict(`${PKG}DiscoveryResponse`, { resources: [resource] });
  return decodeSotwResponse(bytes).resources[0]!;
}

Deno.test("xDS wire: a DiscoveryRequest read and written as Envoy's descriptor says", () => {
  const fields = {
    version_info: "v1",
    node: NODE,
    resource_names: ["a", "b"],
    type_url: LDS,
    response_nonce: "7",
    error_detail: { code: 3, message: "bad" },
  };
  const request = decodeSotwRequest(encodeStrict(`${PKG}DiscoveryRequest`, fields));
  assert.equal(request.versionInfo, "v1");
  assert.deepEqual(request.resourceNames, ["a", "b"]);
  assert.equal(request.typeUrl, LDS);
  assert.equal(request.responseNonce, "7");
  assert.deepEqual(request.errorDetail, { code: 3, message: "bad" });
  assert.deepEqual(decodeStrict("envoy.config.core.v3.Node", request.node!), NODE);
  assert.deepEqual(decodeStrict(`${PKG}DiscoveryRequest`, encodeSotwRequest(request)), fields);
  // An empty error_detail is still a NACK; none is an ACK.
  const nack = decodeSotwRequest(encodeStrict(`${PKG}DiscoveryRequest`, { error_detail: {} }));
  assert.deepEqual(nack.errorDetail, { code: 0, message: "" });
  assert.equal(decodeSotwRequest(new Uint8Array()).errorDetail, null);
  assert.throws(() => decodeSotwRequest(new TextEncoder().encode("not protobuf")));
});

Deno.test("xDS wire: a DiscoveryResponse keeps each resource's bytes; resourceName() reads the name", () => {
  const fields = {
    version_info: "3",
    resources: [
      { "@type": LDS, name: "echo.default" },
      { "@type": EDS, cluster_name: "echo", endpoints: [{ locality: { zone: "z" } }] },
    ],
    type_url: LDS,
    nonce: "9",
  };
  const response = decodeSotwResponse(encodeStrict(`${PKG}DiscoveryResponse`, fields));
  assert.equal(response.versionInfo, "3");
  assert.equal(response.nonce, "9");
  assert.deepEqual(response.resources.map(resourceName), ["echo.default", "echo"]);
  assert.deepEqual(decodeStrict(`${PKG}DiscoveryResponse`, encodeSotwResponse(response)), fields);
  // A resource wrapped in envoy.service.discovery.v3.Resource (for a TTL) is named by the wrapper.
  const wrapped = anyOf({
    "@type": `type.googleapis.com/${PKG}Resource`,
    name: "outer",
    resource: { "@type": LDS, name: "inner" },
  });
  assert.equal(resourceName(wrapped), "outer");
  assert.equal(resourceName(encodeAny(LDS, new Uint8Array())), "");
});

Deno.test("xDS wire: delta requests and responses read and written as Envoy's descriptor says", () => {
  const requestFields = {
    node: NODE,
    type_url: EDS,
    resource_names_subscribe: ["a", "*"],
    resource_names_unsubscribe: ["b"],
    initial_resource_versions: { a: "1", c: "2" },
    response_nonce: "4",
    error_detail: { message: "no" },
  };
  const request = decodeDeltaRequest(encodeStrict(`${PKG}DeltaDiscoveryRequest`, requestFields));
  assert.deepEqual(request.subscribe, ["a", "*"]);
  assert.deepEqual(request.unsubscribe, ["b"]);
  assert.deepEqual([...request.initialVersions], [["a", "1"], ["c", "2"]]);
  assert.equal(request.responseNonce, "4");
  assert.deepEqual(request.errorDetail, { code: 0, message: "no" });
  assert.deepEqual(
    decodeStrict(`${PKG}DeltaDiscoveryRequest`, encodeDeltaRequest(request)),
    requestFields,
  );

  const resource = { "@type": EDS, cluster_name: "a" };
  const responseFields = {
    system_version_info: "5",
    resources: [{ name: "a", version: "1", resource }],
    type_url: EDS,
    nonce: "6",
    removed_resources: ["b"],
  };
  const response = decodeDeltaResponse(
    encodeStrict(`${PKG}DeltaDiscoveryResponse`, responseFields),
  );
  assert.deepEqual(response.resources.map((r) => [r.name, r.version]), [["a", "1"]]);
  assert.deepEqual(response.removed, ["b"]);
  assert.deepEqual(
    decodeStrict(`${PKG}DeltaDiscoveryResponse`, encodeDeltaResponse(response)),
    responseFields,
  );
  // A resource the relay makes itself reads back the same.
  const made = encodeDeltaResource("a", "1", anyOf(resource));
  assert.deepEqual(made.bytes, response.resources[0]!.bytes);
});
