import { Worker } from "node:worker_threads";
import type { Diagnostic } from "../config/diagnostic.js";
import { DomainList, type DomainListData } from "./domain-list.js";
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
    compileOffThread: (file, text) => compileInWorker(file, role, text),
    count: (list) => list.stats.entries + list.stats.exceptions,
    transfer: listTransfer,
  };
}

/** Compiled lists cross to worker processes as their typed-array tables: no worker compiles a big list again. */
const listTransfer = {
  pack: (list: DomainList): unknown => list.toTransfer().data,
  unpack: (data: unknown): DomainList => DomainList.fromTransfer(data as DomainListData),
};

/** The worker file beside this module: .ts when running from sources (tests), .js from dist/. */
const WORKER_URL = new URL(`./compile-worker${import.meta.url.endsWith(".ts") ? ".ts" : ".js"}`, import.meta.url);

export function compileInWorker(
  file: string,
  role: "block" | "allow",
  text: string,
): Promise<{ value: DomainList; diagnostics: Diagnostic[] }> {
  return new Promise((resolve, reject) => {
    // From sources (tests) the worker must register the TypeScript loader itself: Node 20 does not
    // pass loader hooks on to workers.
    const worker = WORKER_URL.pathname.endsWith(".ts")
      ? new Worker(`import("tsx/esm/api").then((t) => { t.register(); return import(${JSON.stringify(WORKER_URL.href)}); });`, {
          eval: true,
        })
      : new Worker(WORKER_URL);
    worker.once("message", (msg: { data: DomainListData; diagnostics: Diagnostic[] }) => {
      void worker.terminate();
      resolve({ value: DomainList.fromTransfer(msg.data), diagnostics: msg.diagnostics });
    });
    worker.once("error", (err) => {
      void worker.terminate();
      reject(err);
    });
    worker.postMessage({ file, role, text });
  });
}

/**
 * rules/intercept.txt (HTTPS to decrypt, beside proxy.intercept) and rules/no-intercept.txt (never
 * decrypted, whatever else says so): domain lists in the blocklist formats.
 */
export interface InterceptList {
  which: "intercept" | "no-intercept";
  list: DomainList;
}

export const interceptFiles: FileKind<InterceptList> = {
  name: "intercept list",
  matches: (rel) => rel === "intercept.txt" || rel === "no-intercept.txt",
  compile: (file, text) => {
    const { list, diagnostics } = DomainList.compile(file, "block", text);
    return { value: { which: file.endsWith("no-intercept.txt") ? "no-intercept" : "intercept", list }, diagnostics };
  },
  count: ({ list }) => list.stats.entries,
  transfer: {
    pack: ({ which, list }) => ({ which, list: listTransfer.pack(list) }),
    unpack: (data) => {
      const d = data as { which: InterceptList["which"]; list: unknown };
      return { which: d.which, list: listTransfer.unpack(d.list) };
    },
  },
};

export const blockFiles = listKind("block");
export const allowFiles = listKind("allow");

export const firewallFile: FileKind<Firewall> = {
  name: "firewall",
  matches: (rel) => rel === "firewall.rules",
  compile: (file, text) => {
    const { firewall, diagnostics } = Firewall.compile(file, text);
    return { value: firewall, diagnostics };
  },
  count: (firewall) => firewall.size,
};
