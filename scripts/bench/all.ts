/**
 * `deno task bench`: every benchmark, each in its own process so one's
 * server and load never disturb the other's figures.
 *
 *   deno task bench [--quick]                 registry heartbeats, then CA issuance
 *   deno task bench --only heartbeat|ca|xds|dns|codec|proxyless|proxyless-push|cli|replicas ARGS  one of them
 */
const BENCHES = {
  heartbeat: new URL("./main.ts", import.meta.url).pathname,
  ca: new URL("./ca.ts", import.meta.url).pathname,
  xds: new URL("./xds.ts", import.meta.url).pathname,
  dns: new URL("./dns.ts", import.meta.url).pathname,
  codec: new URL("./codec.ts", import.meta.url).pathname,
  proxyless: new URL("./proxyless.ts", import.meta.url).pathname,
  "proxyless-push": new URL("./proxyless_push.ts", import.meta.url).pathname,
  cli: new URL("./cli.ts", import.meta.url).pathname,
  replicas: new URL("./replicas.ts", import.meta.url).pathname,
} as const;

async function run(file: string, args: string[]): Promise<number> {
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", file, ...args],
    stdin: "null",
  }).spawn().status;
  return code;
}

const args = [...Deno.args];
const only = args.indexOf("--only");
if (only >= 0) {
  const name = args[only + 1] as keyof typeof BENCHES | undefined;
  if (!name || !(name in BENCHES)) {
    console.error(`--only takes one of: ${Object.keys(BENCHES).join(", ")}`);
    Deno.exit(2);
  }
  args.splice(only, 2);
  Deno.exit(await run(BENCHES[name], args));
}
const unknown = args.filter((a) => a !== "--quick");
if (unknown.length > 0) {
  console.error(
    `Unknown option(s) ${unknown.join(" ")}: use --quick, or --only NAME with its options`,
  );
  Deno.exit(2);
}
let failed = 0;
for (const file of Object.values(BENCHES)) failed += (await run(file, args)) === 0 ? 0 : 1;
Deno.exit(failed === 0 ? 0 : 1);
