/**
 * Did-you-mean for names the user types (kinds), judged the way commander
 * judges unknown verbs and options, so that both kinds of typo answer alike:
 * the candidates at the smallest edit distance, at most 3 edits away and
 * sharing more than 40% of the typed text.
 */
import { distance } from "fastest-levenshtein";

const MAX_EDITS = 3;
const MIN_SIMILARITY = 0.4;

/** The candidates `typed` is closest to, best first; empty when none is close. */
export function closestNames(typed: string, candidates: readonly string[]): string[] {
  let best = Infinity;
  let found: string[] = [];
  for (const candidate of new Set(candidates)) {
    if (candidate.length <= 1) continue;
    const edits = distance(typed.toLowerCase(), candidate);
    const length = Math.max(typed.length, candidate.length);
    if (edits > MAX_EDITS || (length - edits) / length <= MIN_SIMILARITY) continue;
    if (edits < best) {
      best = edits;
      found = [candidate];
    } else if (edits === best) {
      found.push(candidate);
    }
  }
  return found.sort();
}

/** ` (Did you mean "x"?)`, or nothing, for the end of an error message. */
export function didYouMean(typed: string, candidates: readonly string[]): string {
  const found = closestNames(typed, candidates);
  if (found.length === 0) return "";
  return ` (did you mean ${found.map((f) => `"${f}"`).join(" or ")}?)`;
}
