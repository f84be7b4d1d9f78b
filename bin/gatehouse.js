#!/usr/bin/env node
// Runs the TypeScript sources through tsx, which is a runtime dependency: no build step to forget.
import { register } from "tsx/esm/api";

register();
await import("../src/main.ts");
