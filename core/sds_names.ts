/**
 * The names of the two secrets (SDS) every sidecar's TLS configuration uses.
 * The server's generators refer to them and serve `ROOTCA`; the host's agent
 * serves `default` from its own key and certificate, so the private key never
 * leaves the host. Both sides read the names from here.
 */

/** The secret holding the workload certificate and key; the host's agent serves it, never the server. */
export const WORKLOAD_CERT_SECRET = "default";
/** The secret holding the mesh's trust bundle as a validation context; the server serves it. */
export const ROOT_CA_SECRET = "ROOTCA";
