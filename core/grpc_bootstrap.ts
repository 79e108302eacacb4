/**
 * The xDS bootstrap of proxyless gRPC applications (`@grpc/grpc-js-xds` and
 * other gRPC xDS implementations: gRFC A27 for the client, A29 for the
 * certificate providers, A36 for the server Listener), and the names the
 * server and the agent must agree on. The agent writes it per host
 * (`agent/grpc_files.ts`); applications only set `GRPC_XDS_BOOTSTRAP` to
 * its path. Pure: the same input gives the same document.
 */
import { formatHostPort, type HostPort } from "./address.ts";
import type { Labels } from "./labels.ts";

/**
 * The one certificate provider instance of the bootstrap: a `file_watcher`
 * with the workload certificate, its key and the trust bundle. The server's
 * TLS contexts name it for both roles (identity and CA).
 */
export const GRPC_CERTIFICATE_PROVIDER = "ironmesh";

/**
 * Node metadata key: the application's bootstrap has the certificate
 * provider {@link GRPC_CERTIFICATE_PROVIDER}. Only such clients get TLS
 * contexts: gRPC NACKs a Cluster or Listener that names a provider its
 * bootstrap lacks, so a hand-written bootstrap without it keeps working.
 */
export const CERTIFICATE_PROVIDER_METADATA = "IRONMESH_CERTIFICATE_PROVIDER";

/** The prefix of every server Listener name; see {@link serverListenerName}. */
export const SERVER_LISTENER_PREFIX = "ironmesh.io/inbound/";

/**
 * `server_listener_resource_name_template` of a host: gRPC puts the address
 * the application binds (`0.0.0.0:50051`, `[::]:50051`, `10.0.0.5:50051`)
 * in place of `%s`. The node is part of the name because `0.0.0.0:50051`
 * means a different instance on every host, while the server shares one
 * snapshot among the proxyless applications of a namespace and locality.
 */
export function serverListenerTemplate(node: string): string {
  return `${SERVER_LISTENER_PREFIX}${node}/%s`;
}

/** The server Listener a gRPC server on `node` asks for when it binds `bind`. */
export function serverListenerName(node: string, bind: HostPort): string {
  return serverListenerTemplate(node).replace("%s", formatHostPort(bind));
}

/** What the bootstrap depends on. */
export interface GrpcBootstrapParams {
  /** The node name. */
  node: string;
  /** The node's labels; `region` and `zone` become the locality. */
  labels: Labels;
  /** The agent's local xDS endpoint (the bound address). */
  xds: HostPort;
  /** The file holding the workload key and certificate chain (PEM, key first). */
  credentialsFile: string;
  /** The file holding the trust bundle (PEM). */
  bundleFile: string;
  /** How often gRPC re-reads the files, in ms; whole seconds or milliseconds. */
  refreshIntervalMs: number;
}

function durationText(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${(ms / 1000).toFixed(3)}s`;
}

/**
 * The bootstrap (gRFC A27/A29/A36 JSON): the local xDS endpoint without TLS
 * (the agent's relay does mTLS to the server), the node (its metadata says
 * proxyless and that it has the certificate provider; `locality` is
 * required by grpc-js-xds even when empty), one `file_watcher` certificate
 * provider, and the server Listener template.
 *
 * Key and certificate are one file, named as both `certificate_file` and
 * `private_key_file`: two files replaced in turn could be read as a new
 * key with an old certificate for as long as the agent takes between the
 * two renames; one file replaced by a rename holds a matching pair in every
 * read (grpc-js still reads it twice, microseconds apart, so a replacement
 * between those two reads fails new handshakes until the next refresh).
 * OpenSSL (and Deno's TLS) read the certificates and the key out of the
 * same PEM text by their block types.
 */
export function grpcBootstrap(params: GrpcBootstrapParams): Record<string, unknown> {
  const locality: Record<string, string> = {};
  if (params.labels.region) locality.region = params.labels.region;
  if (params.labels.zone) locality.zone = params.labels.zone;
  const host = params.xds.host === "localhost" ? "127.0.0.1" : params.xds.host;
  return {
    xds_servers: [{
      server_uri: formatHostPort({ host, port: params.xds.port }),
      channel_creds: [{ type: "insecure" }],
      server_features: ["xds_v3"],
    }],
    node: {
      id: `proxyless~${params.node}`,
      cluster: params.node,
      metadata: {
        IRONMESH_PROXY: "proxyless",
        IRONMESH_NODE: params.node,
        [CERTIFICATE_PROVIDER_METADATA]: GRPC_CERTIFICATE_PROVIDER,
      },
      locality,
    },
    certificate_providers: {
      [GRPC_CERTIFICATE_PROVIDER]: {
        plugin_name: "file_watcher",
        config: {
          certificate_file: params.credentialsFile,
          private_key_file: params.credentialsFile,
          ca_certificate_file: params.bundleFile,
          refresh_interval: durationText(params.refreshIntervalMs),
        },
      },
    },
    server_listener_resource_name_template: serverListenerTemplate(params.node),
  };
}
