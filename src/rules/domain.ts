import { domainToASCII } from "node:url";

// Domain names as the rules engine keys them: lower case, no trailing dot, IDN in punycode, so
// "Bücher.example." in a list and "xn--bcher-kva.example" in a request are the same key.

const PLAIN = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/;

/** The canonical form of a host name, or undefined if it is not one. */
export function normalizeDomain(input: string): string | undefined {
  let name = input.endsWith(".") ? input.slice(0, -1) : input;
  name = name.toLowerCase();
  if (PLAIN.test(name)) return name.length <= 253 ? name : undefined;
  // Only names with non-ASCII or odd characters pay for the IDNA conversion.
  const ascii = domainToASCII(name);
  if (ascii === "" || !PLAIN.test(ascii) || ascii.length > 253) return undefined;
  return ascii;
}
