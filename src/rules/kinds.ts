import { DomainList } from "./domain-list.js";
import { Firewall } from "./firewall.js";
import type { FileKind } from "./store.js";

// The rules/ layout of the user-facing contract. DNS adds its own kinds (hosts, zones) beside these.

const listFile = (rel: string, dir: string) => rel.startsWith(`${dir}/`) && /\.(txt|list|hosts)$/i.test(rel);

function listKind(role: "block" | "allow"): FileKind<DomainList> {
  return {
    name: `${role}list`,
    matches: (rel) => listFile(rel, role),
    compile: (file, text) => {
      const { list, diagnostics } = DomainList.compile(file, role, text);
      return { value: list, diagnostics };
    },
  };
}

export const blockFiles = listKind("block");
export const allowFiles = listKind("allow");

export const firewallFile: FileKind<Firewall> = {
  name: "firewall",
  matches: (rel) => rel === "firewall.rules",
  compile: (file, text) => {
    const { firewall, diagnostics } = Firewall.compile(file, text);
    return { value: firewall, diagnostics };
  },
};
