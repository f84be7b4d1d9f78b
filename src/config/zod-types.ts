import { z } from "zod";
import { isAddressOrCidr, parseListen } from "../net/address.js";
import { parseDuration, parseSize } from "./units.js";

// The value types gatehouse.yaml shares across its sections: "256MiB" and "30s" become numbers once,
// here, so the rest of the program never parses units again.

export const size = (def: string) =>
  z
    .union([z.string(), z.number()])
    .transform((v, ctx) => {
      const n = parseSize(v);
      if (n === undefined) {
        ctx.addIssue({ code: "custom", message: "expected a size like 256MiB" });
        return z.NEVER;
      }
      return n;
    })
    .default(parseSize(def) as number);

export const duration = (def: string) =>
  z
    .union([z.string(), z.number()])
    .transform((v, ctx) => {
      const n = parseDuration(v);
      if (n === undefined) {
        ctx.addIssue({
          code: "custom",
          message:
            "expected a duration like 500ms, 30s, 5m, 2h or 180d (units ms, s, m, h, d; combined like 1h30m; a bare number is seconds)",
        });
        return z.NEVER;
      }
      return n;
    })
    .default(parseDuration(def) as number);

export const listenAddress = z.string().superRefine((v, ctx) => {
  const parsed = parseListen(v);
  if (typeof parsed === "string") ctx.addIssue({ code: "custom", message: parsed });
});

export const listenList = (def: string[]) => z.array(listenAddress).default(def);

export const cidr = z.string().refine(isAddressOrCidr, { message: "expected an IP address or a CIDR like 192.168.1.0/24" });

export const port = z.number().int().min(1).max(65535);
