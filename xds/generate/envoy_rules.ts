/**
 * Envoy's own validation rules over a whole snapshot: the protoc-gen-validate
 * annotations of its `.proto` files (`xds/proto/validate.ts`), which Envoy
 * enforces with a NACK beyond what the schema says. The goldens and the
 * generator tests check every resource with them; the push pipeline does at
 * run time when asked to (`debugChecks`), next to `consistent()`.
 *
 * Pure: no I/O.
 * @module
 */
import { describeViolations, resourceViolations } from "../proto/validate.ts";
import { type ProxySnapshot, RESOURCE_KINDS } from "./model.ts";

/**
 * The rules each resource of `snapshot` breaks, one line each, naming the
 * resource, the field and the rule; empty means Envoy would accept them.
 * @param checked Versions already found clean (`<type URL>|<version>`);
 *   a version is content, so a resource seen once is not checked again.
 *   Filled with the clean ones.
 */
export function ruleProblems(snapshot: ProxySnapshot, checked?: Set<string>): string[] {
  const problems: string[] = [];
  for (const kind of RESOURCE_KINDS) {
    for (const r of snapshot[kind]) {
      const key = `${r.typeUrl}|${r.version}`;
      if (checked?.has(key)) continue;
      const typeName = r.typeUrl.slice(r.typeUrl.indexOf("/") + 1);
      const broken = describeViolations(resourceViolations(typeName, r.body));
      if (broken.length === 0) checked?.add(key);
      for (const line of broken) problems.push(`${typeName} "${r.name}": ${line}`);
    }
  }
  return problems;
}
