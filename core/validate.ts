import { isMap, isSeq, LineCounter, parseAllDocuments, parseDocument } from "yaml";
import type { z } from "zod";
import { type FieldProblem, InvalidError } from "./errors.ts";

/** Escapes one JSON-pointer segment (RFC 6901). */
function escapeSegment(segment: PropertyKey): string {
  return String(segment).replaceAll("~", "~0").replaceAll("/", "~1");
}

/** Builds a JSON pointer from a path of keys and indexes. */
export function toPointer(path: readonly PropertyKey[]): string {
  return path.map((s) => "/" + escapeSegment(s)).join("");
}

/** Reports a problem a refinement found at `path` (relative to the refined value). */
export function fieldIssue(
  ctx: z.RefinementCtx,
  path: readonly PropertyKey[],
  message: string,
): void {
  ctx.addIssue({ code: "custom", path: [...path], message });
}

/** Turns a zod error into one problem per bad field; an unknown key is reported at its own path. */
export function zodProblems(
  error: z.ZodError,
  prefix: readonly PropertyKey[] = [],
): FieldProblem[] {
  const problems: FieldProblem[] = [];
  for (const issue of error.issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        problems.push({ pointer: toPointer([...path, key]), message: `Unknown field "${key}"` });
      }
    } else {
      problems.push({ pointer: toPointer(path), message: issue.message });
    }
  }
  return problems;
}

/**
 * Validates `value` against `schema` and returns the parsed result, or throws
 * an {@link InvalidError} that lists every bad field.
 */
export function parseWith<S extends z.ZodType>(
  schema: S,
  value: unknown,
  what: string,
): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = zodProblems(result.error);
  throw new InvalidError(`Invalid ${what}: ${summarize(problems)}`, problems);
}

function summarize(problems: FieldProblem[]): string {
  const first = problems[0];
  if (!first) return "no details";
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : "";
  return `${first.pointer || "/"}: ${first.message}${more}`;
}

/** A problem in a configuration file, located by line and column (1-based) and field. */
export interface FileProblem extends FieldProblem {
  file: string;
  line: number;
  column: number;
}

/** Thrown by {@link parseConfigText}: every problem of the file, each with its line. */
export class ConfigFileError extends InvalidError {
  constructor(readonly file: string, readonly fileProblems: FileProblem[]) {
    super(
      `Invalid configuration file ${file}:\n` +
        fileProblems.map((p) =>
          `  ${p.file}:${p.line}:${p.column}: ${p.pointer || "/"}: ${p.message}`
        ).join("\n"),
      fileProblems,
    );
  }
}

/**
 * Parses a YAML (or JSON, which is YAML) configuration text and validates it
 * against `schema`. Every problem names the file, line, column and field, so
 * an operator can go straight to it.
 */
export function parseConfigText<S extends z.ZodType>(
  text: string,
  file: string,
  schema: S,
): z.output<S> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number) => lineCounter.linePos(offset);
  if (doc.errors.length > 0) throw new ConfigFileError(file, syntaxProblems(doc.errors, at, file));
  const result = schema.safeParse(doc.toJS() ?? {});
  if (result.success) return result.data;
  const located = result.error.issues.flatMap((issue) => {
    const keys = issue.code === "unrecognized_keys" ? issue.keys : [undefined];
    return keys.map((key) => {
      const path = key === undefined ? issue.path : [...issue.path, key];
      const pos = at(offsetOf(doc, path));
      return {
        file,
        line: pos.line,
        column: pos.col,
        pointer: toPointer(path),
        message: key === undefined ? issue.message : `Unknown field "${key}"`,
      };
    });
  });
  throw new ConfigFileError(file, located);
}

/** YAML syntax errors as file problems, each at its line. */
function syntaxProblems(
  errors: readonly { pos: [number, number]; message: string }[],
  at: (offset: number) => { line: number; col: number },
  file: string,
): FileProblem[] {
  return errors.map((e) => {
    const pos = at(e.pos[0]);
    return {
      file,
      line: pos.line,
      column: pos.col,
      pointer: "",
      message: e.message.split("\n")[0]!,
    };
  });
}

/** One document of a multi-document YAML file, with a way back to its source lines. */
export interface SourceDocument {
  /** 0-based position among the file's non-empty documents. */
  index: number;
  value: unknown;
  /** Line and column (1-based) of the deepest node on `pointer` that exists. */
  locate(pointer: string): { line: number; column: number };
}

/** The keys of a JSON pointer (RFC 6901). */
export function fromPointer(pointer: string): string[] {
  if (pointer === "") return [];
  return pointer.slice(1).split("/").map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
}

/**
 * Parses a file of `---`-separated YAML documents (kubectl's format), leaving
 * out empty ones. A syntax error anywhere throws a {@link ConfigFileError}
 * naming its line, before any document is used.
 */
export function parseYamlDocuments(text: string, file: string): SourceDocument[] {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number) => lineCounter.linePos(offset);
  const list = Array.isArray(docs) ? docs : [];
  const errors = syntaxProblems(list.flatMap((d) => d.errors), at, file);
  if (errors.length > 0) throw new ConfigFileError(file, errors);
  return list.filter((d) => d.contents !== null).map((doc, index) => ({
    index,
    value: doc.toJS(),
    locate(pointer: string) {
      const pos = at(offsetOf(doc, fromPointer(pointer)));
      return { line: pos.line, column: pos.col };
    },
  }));
}

/** The source offset of the deepest node on `path` that exists (the key itself for map entries). */
function offsetOf(doc: { contents: unknown }, path: readonly PropertyKey[]): number {
  let node: unknown = doc.contents;
  let offset = (node as { range?: [number] } | null)?.range?.[0] ?? 0;
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) =>
        String((p.key as { value?: unknown })?.value) === String(segment)
      );
      if (!pair) break;
      offset = (pair.key as { range?: [number] }).range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node)) {
      const item = node.items[Number(segment)];
      if (!item) break;
      offset = (item as { range?: [number] }).range?.[0] ?? offset;
      node = item;
    } else break;
  }
  return offset;
}
