import assert from "node:assert/strict";
import {
  CDS_TYPE_URL,
  EDS_TYPE_URL,
  LDS_TYPE_URL,
  RDS_TYPE_URL,
  RESOURCE_WRAPPER_TYPE_URL,
  SDS_TYPE_URL,
  typeUrl,
} from "./xds_type_urls.ts";

const SECRET = "envoy.extensions.transport_sockets.tls.v3.Secret";

Deno.test("typeUrl() and the xDS type URL constants", () => {
  assert.equal(typeUrl("a.b.C"), "type.googleapis.com/a.b.C");
  assert.equal(LDS_TYPE_URL, "type.googleapis.com/envoy.config.listener.v3.Listener");
  assert.equal(RDS_TYPE_URL, "type.googleapis.com/envoy.config.route.v3.RouteConfiguration");
  assert.equal(CDS_TYPE_URL, "type.googleapis.com/envoy.config.cluster.v3.Cluster");
  assert.equal(EDS_TYPE_URL, "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment");
  assert.equal(SDS_TYPE_URL, `type.googleapis.com/${SECRET}`);
  assert.equal(
    RESOURCE_WRAPPER_TYPE_URL,
    "type.googleapis.com/envoy.service.discovery.v3.Resource",
  );
});
