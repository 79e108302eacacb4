/** The scan of a bundle for code that would reach back into the source tree or the network at run time. */
import { ROOT } from "./build_targets.ts";

/** Something in the bundle worth knowing about, with the source file it came from. */
export interface Finding {
  /** `error` fails the build: the bundle would depend on the machine it was built on. */
  level: "error" | "warning";
  /** 1-based line in the bundle. */
  line: number;
  /** The module the line belongs to (from the bundler's `// path` comments), or `?`. */
  source: string;
  message: string;
  excerpt: string;
}

interface Rule {
  level: Finding["level"];
  pattern: RegExp;
  message: string;
  /** Lines this rule ignores (e.g. the bundler's own preamble). */
  skip?: RegExp;
}

function rules(root: string): Rule[] {
  const rootNoSlash = root.replace(/\/+$/, "");
  const escaped = rootNoSlash.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return [
    {
      level: "error",
      pattern: new RegExp(`${escaped}(?=[/"'\`]|$)`),
      message: `absolute path of the source tree (${rootNoSlash}) baked into the bundle`,
    },
    {
      level: "error",
      pattern: /\bfrom\s*["'](?:npm|jsr|https?):|\bimport\s*\(\s*["'](?:npm|jsr|https?):/,
      message: "import left external: the bundle would fetch it at run time",
    },
    {
      level: "warning",
      pattern: /new\s+(?:Shared)?Worker\s*\(/,
      message: "Web Worker: its module URL is resolved at run time and is not in the bundle",
    },
    {
      level: "warning",
      pattern: /\bimport\.meta\.(?:url|dirname|filename|resolve)\b/,
      message: "import.meta.url-relative: resolves next to the bundle, not in the source tree",
      // The bundler's own `createRequire(import.meta.url)` for `node:` built-ins.
      skip: /__deno_internal_createRequire\(import\.meta\.url\)|^\s*\*/,
    },
    {
      level: "warning",
      pattern: /(?<![.\w$])import\s*\(\s*[^"'\s)]/,
      message: "dynamic import of a computed specifier: not bundled",
      // A method named `import` (`import(data, options) {`) is not an import.
      skip: /^\s*(?:async\s+)?import\s*\([^)]*\)\s*\{/,
    },
    {
      level: "warning",
      pattern: /\$\{__dirname\}|\b__dirname\s*[+,)]|\b__filename\b/,
      message: "CommonJS __dirname/__filename: not defined in an ES module bundle",
    },
  ];
}

/**
 * Scans bundle text for code that would read the source tree or the network
 * at run time. Each finding names the module it came from.
 */
export function inspectBundle(text: string, root: string = ROOT): Finding[] {
  const findings: Finding[] = [];
  const checks = rules(root);
  let source = "?";
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const marker = /^\/\/ ((?:[\w@.+-]+\/)*[\w@.+-]+\.(?:[cm]?[jt]sx?|json))$/.exec(line);
    if (marker) {
      source = marker[1]!.replace(/^node_modules\/\.deno\/[^/]+\/node_modules\//, "npm:");
      continue;
    }
    for (const rule of checks) {
      if (!rule.pattern.test(line) || rule.skip?.test(line)) continue;
      findings.push({
        level: rule.level,
        line: i + 1,
        source,
        message: rule.message,
        excerpt: line.trim().slice(0, 160),
      });
    }
  }
  return findings;
}

/** Formats findings one a line, for the console and for assertion messages. */
export function formatFindings(findings: readonly Finding[]): string {
  return findings.map((f) =>
    `  ${f.level}: ${f.source} (line ${f.line}): ${f.message}\n` +
    `      ${f.excerpt}`
  ).join("\n");
}
