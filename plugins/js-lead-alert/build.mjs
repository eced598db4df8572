// Builds plugin.js into a WebAssembly component: node build.mjs [out.wasm]
import { componentize } from "@bytecodealliance/componentize-js";
import { writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { dirname, join, resolve } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, "dist", "js-lead-alert.wasm"));
const { component } = await componentize({
  sourcePath: join(here, "plugin.js"),
  witPath: join(here, "..", "..", "plugin-sdk", "wit"),
  worldName: "plugin",
  // Leave only the plugin's own imports: no WASI clocks, random, stdio or HTTP.
  disableFeatures: ["random", "stdio", "clocks", "http", "fetch-event"],
});
await import("node:fs").then((fs) => fs.mkdirSync(dirname(out), { recursive: true }));
await writeFile(out, component);
console.log(`wrote ${out} (${component.length} bytes)`);
