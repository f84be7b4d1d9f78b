// Admins paste regexes from the internet. One with nested quantifiers, like (a+)+ or (\w*)*, can
// take exponential time on a crafted name and would stall every lookup. We refuse those up front
// (a syntactic check on the pattern, the way RE2-less tools like safe-regex do) instead of trying to
// time regexes at run time, which JavaScript cannot interrupt.

/** A reason the pattern is unsafe, or undefined if it is safe to run on every lookup. */
export function unsafeRegexReason(source: string): string | undefined {
  if (source.length > 1024) return "regular expression longer than 1024 characters";
  if (/\\[1-9]/.test(source)) return "back-references can backtrack exponentially";
  // Walk the pattern keeping, per open group, whether it contains a quantifier.
  const stack: { quantified: boolean; alternation: boolean }[] = [];
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (inClass) {
      if (c === "]") inClass = false;
      continue;
    }
    if (c === "[") {
      inClass = true;
      continue;
    }
    if (c === "(") {
      stack.push({ quantified: false, alternation: false });
      continue;
    }
    if (c === "|" && stack.length > 0) {
      (stack[stack.length - 1] as { alternation: boolean }).alternation = true;
      continue;
    }
    if (c === ")") {
      const group = stack.pop();
      const next = source[i + 1];
      const repeated =
        next === "*" ||
        next === "+" ||
        (next === "{" && /^\{\d*,\d*\}/.test(source.slice(i + 1)) && !/^\{\d+\}/.test(source.slice(i + 1)));
      if (group && repeated && group.quantified) return "nested quantifiers like (a+)+ can backtrack catastrophically";
      if (group && repeated && group.alternation) return "a repeated alternation like (a|ab)* can backtrack catastrophically";
      if (group && stack.length > 0 && (group.quantified || repeated)) {
        (stack[stack.length - 1] as { quantified: boolean }).quantified = true;
      }
      continue;
    }
    if ((c === "*" || c === "+" || c === "{") && stack.length > 0) {
      (stack[stack.length - 1] as { quantified: boolean }).quantified = true;
    }
  }
  return undefined;
}
