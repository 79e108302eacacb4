/**
 * Whether an earlier route rule leaves a later one no request (first match
 * wins), judged by the text of the conditions, and the reason in words: the
 * "Never matches" warnings of pass 2 (`check.ts`).
 */
import type { RouteMatch, ValueMatch } from "./model.ts";

function isCatchAll(m: RouteMatch): boolean {
  return !m.path && !m.methods && Object.keys(m.headers ?? {}).length === 0 &&
    Object.keys(m.query ?? {}).length === 0;
}

/** True when every request one of `later`'s entries matches, one of `earlier`'s matches too. */
export function coversAll(earlier: readonly RouteMatch[], later: readonly RouteMatch[]): boolean {
  return later.every((b) => earlier.some((a) => covers(a, b)));
}

/** Why `earlier`'s entries match every request `later`'s match (they do). */
export function coverage(earlier: readonly RouteMatch[], later: readonly RouteMatch[]): string {
  if (earlier.some(isCatchAll)) return "matches every request";
  if (coversAll(later, earlier)) return "has the same match";
  const [only] = earlier;
  const { path, ...rest } = only ?? {};
  if (earlier.length === 1 && path?.prefix !== undefined && isCatchAll(rest)) {
    return `matches every path starting with "${path.prefix}"`;
  }
  return "matches every request this one matches";
}

/** True when every request `b` matches is matched by `a`, judged by the text of the conditions. */
function covers(a: RouteMatch, b: RouteMatch): boolean {
  if (isCatchAll(a)) return true;
  if (a.path && !(b.path && valueCovers(a.path, b.path))) return false;
  const methods = a.methods;
  if (methods && !(b.methods && b.methods.every((m) => methods.includes(m)))) return false;
  return mapCovers(a.headers, b.headers) && mapCovers(a.query, b.query);
}

function mapCovers(
  a: Record<string, ValueMatch> | undefined,
  b: Record<string, ValueMatch> | undefined,
): boolean {
  return Object.entries(a ?? {}).every(([name, match]) => {
    const other = b?.[name];
    return other !== undefined && valueCovers(match, other);
  });
}

/** True when every value `b` accepts, `a` accepts too. Regexes are compared as text. */
function valueCovers(a: ValueMatch, b: ValueMatch): boolean {
  if (a.present !== undefined) return a.present ? b.present !== false : b.present === false;
  if (a.exact !== undefined) return b.exact === a.exact;
  if (a.prefix !== undefined) return (b.prefix ?? b.exact)?.startsWith(a.prefix) ?? false;
  return a.regex !== undefined && b.regex === a.regex;
}
