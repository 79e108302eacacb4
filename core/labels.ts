import { z } from "zod";

const KEY_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const KEY_PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Labels on services, nodes and instances: string to string, Kubernetes rules. */
export type Labels = Record<string, string>;

/** Returns why `key` is not a valid label key, or `undefined` when it is. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf("/");
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length > 253 || !KEY_PREFIX.test(prefix))) {
    return `Invalid label key "${key}": the prefix must be a DNS-1123 subdomain`;
  }
  if (name.length === 0 || name.length > 63 || !KEY_NAME.test(name)) {
    return `Invalid label key "${key}": the name must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`;
  }
  return undefined;
}

/** Returns why `value` is not a valid label value, or `undefined` when it is. */
export function labelValueProblem(value: string): string | undefined {
  if (value === "") return undefined;
  if (value.length > 63 || !KEY_NAME.test(value)) {
    return `Invalid label value "${value}": must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`;
  }
  return undefined;
}

/** A zod schema for a label map; every bad key or value is reported at its own path. */
export const labelsSchema = z.record(z.string(), z.string()).superRefine((labels, ctx) => {
  const keys = Object.keys(labels);
  if (keys.length > 64) {
    ctx.addIssue({ code: "custom", message: "At most 64 labels are allowed", path: [] });
  }
  for (const key of keys) {
    const keyProblem = labelKeyProblem(key);
    if (keyProblem) ctx.addIssue({ code: "custom", message: keyProblem, path: [key] });
    const valueProblem = labelValueProblem(labels[key]!);
    if (valueProblem) ctx.addIssue({ code: "custom", message: valueProblem, path: [key] });
  }
});

/** One requirement of a label selector. */
export type Requirement =
  | { key: string; op: "exists" | "notExists" }
  | { key: string; op: "in" | "notIn"; values: string[] };

/** A parsed label selector: every requirement must hold (logical AND). */
export interface Selector {
  requirements: Requirement[];
}

/** The result of {@link parseSelector}. */
export type SelectorResult = { ok: true; selector: Selector } | { ok: false; error: string };

const SET_REQ = /^([^\s!=(),]+)\s+(in|notin)\s+\(([^()]*)\)$/;
const EQ_REQ = /^([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)$/;

/**
 * Parses a Kubernetes-style label selector: `version=v1,env!=prod,tier in (a,b),canary,!legacy`.
 * Operators coming from Kubernetes and Istio already write these.
 */
export function parseSelector(text: string): SelectorResult {
  const requirements: Requirement[] = [];
  for (const part of splitTopLevel(text)) {
    const req = parseRequirement(part.trim());
    if (typeof req === "string") return { ok: false, error: req };
    requirements.push(req);
  }
  return { ok: true, selector: { requirements } };
}

function parseRequirement(part: string): Requirement | string {
  if (part === "") return `Invalid label selector: empty requirement`;
  const set = SET_REQ.exec(part);
  if (set) {
    const values = set[3]!.split(",").map((v) => v.trim());
    const bad = labelKeyProblem(set[1]!) ?? values.map(labelValueProblem).find((p) => p);
    if (bad) return `Invalid label selector "${part}": ${bad}`;
    return { key: set[1]!, op: set[2] === "in" ? "in" : "notIn", values };
  }
  const eq = EQ_REQ.exec(part);
  if (eq) {
    const bad = labelKeyProblem(eq[1]!) ?? labelValueProblem(eq[3]!);
    if (bad) return `Invalid label selector "${part}": ${bad}`;
    return { key: eq[1]!, op: eq[2] === "!=" ? "notIn" : "in", values: [eq[3]!] };
  }
  const negated = part.startsWith("!");
  const key = negated ? part.slice(1).trim() : part;
  const bad = labelKeyProblem(key);
  if (bad) return `Invalid label selector "${part}": ${bad}`;
  return { key, op: negated ? "notExists" : "exists" };
}

function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === "(") depth++;
    else if (ch === ")") depth--;
    else if (ch === "," && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

/** True when `labels` satisfy every requirement of `selector`. */
export function matchesSelector(selector: Selector, labels: Labels): boolean {
  return selector.requirements.every((req) => {
    const has = Object.hasOwn(labels, req.key);
    switch (req.op) {
      case "exists":
        return has;
      case "notExists":
        return !has;
      case "in":
        return has && req.values.includes(labels[req.key]!);
      case "notIn":
        return !has || !req.values.includes(labels[req.key]!);
    }
  });
}
