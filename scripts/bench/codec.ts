/**
 * The protobuf codec decision's measurement: our strict encoder
 * (`xds/proto/codec.ts`: a schema check of every key, then protobufjs) against
 * `@bufbuild/protobuf` (`fromJson` + `toBinary`, which refuses unknown fields
 * itself) on the ADS server's encode path, JSON resource → bytes, for the
 * same descriptor.
 *
 *   deno run -A scripts/bench/codec.ts [--rounds N] [--runs N]
 *
 * Workload: every resource of the generator golden files
 * (`xds/generate/testdata/*.golden.yaml`: listeners, routes, clusters,
 * endpoints and secrets of the sidecar, proxyless and policy scenarios),
 * encoded `--rounds` times (default 200) per run; the figure is the median of
 * `--runs` runs (default 5) after one warm-up run. Before timing, it checks
 * that both encodings decode to the same message and that both refuse a
 * misspelt field.
 */
import { fromJson, type JsonValue, toBinary } from "@bufbuild/protobuf";
import { isDeepStrictEqual } from "node:util";
import { parseArgs } from "node:util";
import { parse } from "yaml";
import { decodeStrict, encodeStrict } from "../../xds/proto/codec.ts";
import { bufRegistry } from "./codec_registry.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { rounds: { type: "string", default: "200" }, runs: { type: "string", default: "5" } },
});
const ROUNDS = Number(values.rounds);
const RUNS = Number(values.runs);

/** One resource of a golden file: its message type and its JSON form. */
interface Resource {
  typeName: string;
  body: JsonValue;
}

function goldenResources(): Resource[] {
  const dir = new URL("../../xds/generate/testdata/", import.meta.url);
  const resources: Resource[] = [];
  for (const entry of [...Deno.readDirSync(dir)].sort((a, b) => a.name.localeCompare(b.name))) {
    if (!entry.name.endsWith(".golden.yaml")) continue;
    const doc = parse(Deno.readTextFileSync(new URL(entry.name, dir))) as Record<
      string,
      { typeUrl: string; body: JsonValue }[] | null
    >;
    for (const list of Object.values(doc)) {
      for (const r of list ?? []) {
        resources.push({ typeName: r.typeUrl.slice(r.typeUrl.indexOf("/") + 1), body: r.body });
      }
    }
  }
  return resources;
}

const resources = goldenResources();
const built = performance.now();
const registry = bufRegistry();
const registryMs = performance.now() - built;
const schemas = resources.map((r) => {
  const schema = registry.getMessage(r.typeName);
  if (!schema) throw new Error(`@bufbuild/protobuf has no type "${r.typeName}"`);
  return schema;
});
const ours = (r: Resource) => encodeStrict(r.typeName, r.body);
const theirs = (r: Resource, i: number) =>
  toBinary(schemas[i]!, fromJson(schemas[i]!, r.body, { registry }));

for (const [i, r] of resources.entries()) {
  if (
    !isDeepStrictEqual(decodeStrict(r.typeName, ours(r)), decodeStrict(r.typeName, theirs(r, i)))
  ) {
    throw new Error(`The two encodings of a ${r.typeName} differ`);
  }
}
const misspelt = { typeName: "envoy.config.cluster.v3.Cluster", body: { nmae: "x" } };
const refuses = (encode: () => unknown) => {
  try {
    encode();
    return false;
  } catch {
    return true;
  }
};
if (!refuses(() => ours(misspelt))) throw new Error("Our codec took a misspelt field");
const clusterIndex = resources.findIndex((r) => r.typeName === misspelt.typeName);
if (
  !refuses(() =>
    toBinary(schemas[clusterIndex]!, fromJson(schemas[clusterIndex]!, misspelt.body, { registry }))
  )
) {
  throw new Error("@bufbuild/protobuf took a misspelt field");
}

function median(run: () => void): number {
  run();
  const times: number[] = [];
  for (let k = 0; k < RUNS; k++) {
    const start = performance.now();
    run();
    times.push(performance.now() - start);
  }
  return times.sort((a, b) => a - b)[Math.floor(RUNS / 2)]!;
}
const oursMs = median(() => {
  for (let k = 0; k < ROUNDS; k++) for (const r of resources) ours(r);
});
const theirsMs = median(() => {
  for (let k = 0; k < ROUNDS; k++) resources.forEach(theirs);
});
const encodes = ROUNDS * resources.length;
console.log(
  `Codec: ${resources.length} golden resources × ${ROUNDS} rounds = ${encodes} encodes; both encodings decode alike and both refuse a misspelt field`,
);
console.log(
  `  xds/proto/codec.ts encodeStrict   ${oursMs.toFixed(0)} ms (${
    (oursMs * 1000 / encodes).toFixed(1)
  } µs each)`,
);
console.log(
  `  @bufbuild/protobuf fromJson+toBinary ${theirsMs.toFixed(0)} ms (${
    (theirsMs * 1000 / encodes).toFixed(1)
  } µs each); its registry built in ${registryMs.toFixed(0)} ms`,
);
