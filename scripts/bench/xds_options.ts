/**
 * The command line of the xDS bench (`deno task bench --only xds`, `xds.ts`)
 * and the targets it judges against.
 *
 * @module
 */
import { parseArgs } from "node:util";

/** The targets of issue 10 (see `xds.ts`). */
export const XDS_TARGET = {
  proxies: 2_000,
  services: 1_000,
  rssMb: 256,
  /** 5,000 proxies over 10,000 services: peak and settled RSS. */
  largeRssMb: 512,
  largeSettledMb: 400,
  changeP99Ms: 50,
  changeCpuMs: 10,
  policyP99Ms: 50,
  sharedP99Ms: 150,
  largeSharedP99Ms: 400,
  restartMs: 10_000,
};

const USAGE = `Usage: deno task bench --only xds [options]

  --proxies N        proxyless ADS clients (default 2000; --quick 200)
  --services N       services, two instances each (default 1000; --quick 100)
  --connections N    HTTP/2 connections the streams share (default 40; --quick 20)
  --changes N        endpoint changes measured one at a time (default 20; --quick 10)
  --policies N       TrafficRoute writes measured one at a time (default 20; --quick 10)
  --shared           every proxy also dials svc-0 (the service everyone calls)
  --extra N          every proxy also dials N more services (default 0)
  --shared-changes N with --shared: changes to svc-0 measured (default 10)
  --debounce D       server --push-debounce (default 10ms)
  --max-delay D      server --push-max-delay (default 100ms)
  --restart-gap MS   keep the server down this long after it exits, as a slow restart would (default 0)
  --cpu-prof DIR     run the server with --cpu-prof, profiles written to DIR
  --quick            the small smoke run (not judged)
`;

/** The bench's options; prints the usage and exits on `--help` or a bad value. */
export function xdsBenchOptions(args: string[]) {
  const { values } = parseArgs({
    args,
    options: {
      proxies: { type: "string" },
      services: { type: "string" },
      connections: { type: "string" },
      changes: { type: "string" },
      policies: { type: "string" },
      shared: { type: "boolean", default: false },
      extra: { type: "string", default: "0" },
      "shared-changes": { type: "string", default: "10" },
      debounce: { type: "string", default: "10ms" },
      "max-delay": { type: "string", default: "100ms" },
      "restart-gap": { type: "string", default: "0" },
      "cpu-prof": { type: "string" },
      quick: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const quick = values.quick;
  const int = (v: string | undefined, full: number, small: number) => {
    const n = v === undefined ? (quick ? small : full) : Number(v);
    if (!Number.isInteger(n) || n < 1) {
      console.error(`Not a positive integer: ${v}\n\n${USAGE}`);
      Deno.exit(2);
    }
    return n;
  };
  const N = int(values.proxies, XDS_TARGET.proxies, 200);
  const S = int(values.services, XDS_TARGET.services, 100);
  const C = Math.min(N, int(values.connections, 40, 20));
  const K = Math.min(S, int(values.changes, 20, 10));
  const P = Math.min(S, int(values.policies, 20, 10));
  const SHARED = values.shared;
  const EXTRA = Number(values.extra);
  const SHARED_CHANGES = SHARED ? int(values["shared-changes"], 10, 10) : 0;
  if (!Number.isInteger(EXTRA) || EXTRA < 0) {
    console.error(`--extra takes a whole number, not ${values.extra}`);
    Deno.exit(2);
  }
  const RESTART_GAP_MS = Number(values["restart-gap"]);
  if (!Number.isFinite(RESTART_GAP_MS) || RESTART_GAP_MS < 0) {
    console.error(`--restart-gap takes milliseconds, not ${values["restart-gap"]}`);
    Deno.exit(2);
  }
  return { values, N, S, C, K, P, SHARED, EXTRA, SHARED_CHANGES, RESTART_GAP_MS };
}
