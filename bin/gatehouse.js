#!/usr/bin/env node
// Runs the compiled program (npm install builds dist/ through the "prepare" script). Compiled, not
// through a TypeScript loader at run time: the loader's helpers cost the proxy measurable throughput.
await import("../dist/main.js");
