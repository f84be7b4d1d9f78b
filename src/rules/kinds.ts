import { DomainList } from "./domain-list.js";
import { Firewall } from "./firewall.js";
import type { FileKind } from "./store.js";

// The rules/ layout of the user-facing contract. DNS adds its own kinds (hosts, zones) beside these.

const listFile = (rel: string, dir: string) => rel.startsWith(`${dir}/`) && /\.(txt|list|hosts)$/i.test(rel);

export const blockFiles: FileKind<DomainList> = {
  name: "blocklist",
  matches: (rel) => listFile(rel, "block"),
  compile: (file, text) => {
    const { list, diagnostics } = DomainList.compile(file, "block", text);
    return { value: list, diagnostics };
  },
};

export const allowFiles: FileKind<DomainList> = {
  name: "allowlist",
  matches: (rel) => listFile(rel, "allow"),
  compile: (file, text) => {
    const { list, diagnostics } = DomainList.compile(file, "allow", text);
    return { value: list, diagnostics };
  },
};

export const firewallFile: FileKind<Firewall> = {
  name: "firewall",
  matches: (rel) => rel === "firewall.rules",
  compile: (file, text) => {
    const { firewall, diagnostics } = Firewall.compile(file, text);
    return { value: firewall, diagnostics };
  },
};
