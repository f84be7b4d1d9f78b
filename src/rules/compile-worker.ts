import { parentPort } from "node:worker_threads";
import { DomainList } from "./domain-list.js";

// Compiles one big list file off the main thread, so that a million-line list changing on disk
// (a remote list refresh, an admin's import) does not stall the proxy and the DNS for a second.

interface Job {
  file: string;
  role: "block" | "allow";
  text: string;
}

parentPort?.on("message", (job: Job) => {
  const { list, diagnostics } = DomainList.compile(job.file, job.role, job.text);
  const { data, transfer } = list.toTransfer();
  parentPort?.postMessage({ data, diagnostics }, transfer);
});
