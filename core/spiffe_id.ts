/** Builds the SPIFFE ID of a workload: `spiffe://<td>/ns/<namespace>/sa/<service-account>`. */
export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/** The parts of a workload SPIFFE ID, or `undefined` when `id` is not one of ours. */
export function parseSpiffeId(
  id: string,
): { trustDomain: string; namespace: string; serviceAccount: string } | undefined {
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(id);
  return m ? { trustDomain: m[1]!, namespace: m[2]!, serviceAccount: m[3]! } : undefined;
}
