// The contract every request and every query goes through: a stage does one job and either answers
// or hands the exchange on. Chains are composed once at (re)load, so a request pays one closure call
// per stage and nothing else.

export type Handler<X, O> = (x: X) => Promise<O>;

export interface Stage<X, O> {
  /** Shown in logs and decision trails ("firewall", "cache"). */
  readonly name: string;
  handle(x: X, next: Handler<X, O>): Promise<O>;
}

export function compose<X, O>(stages: readonly Stage<X, O>[], terminal: Handler<X, O>): Handler<X, O> {
  let next = terminal;
  for (let i = stages.length - 1; i >= 0; i--) {
    const stage = stages[i] as Stage<X, O>;
    const after = next;
    next = (x) => stage.handle(x, after);
  }
  return next;
}

/** A rule as the admin wrote it, so every decision can point at `file:line`. */
export interface RuleRef {
  file: string;
  line: number;
  text: string;
}

/** One step of "why did I get this?": which stage decided what, and by which rule. */
export interface Decision {
  stage: string;
  action: "allow" | "deny" | "block" | "answer";
  reason: string;
  rule?: RuleRef;
}
