// The architecture rule (.dependency-cruiser.cjs): no import cycle between files, and each folder of
// lib/ imports only the folders of its own layer or below. dependency-cruiser reads the sources.
import { expect, test } from "bun:test";
import { resolve } from "node:path";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const ROOT = resolve(import.meta.dir, "..");
const CRUISER = resolve(ROOT, "node_modules/dependency-cruiser/bin/dependency-cruiser.mjs");

test("lib/ and scripts/ have no import cycles and no import that points up a layer", () => {
  // Bun runs it: dependency-cruiser refuses Node 20, which is what CI's machines have.
  const run = Bun.spawnSync(["bun", CRUISER, "lib", "scripts", "--config", ".dependency-cruiser.cjs", "--output-type", "err"], { cwd: ROOT });
  const out = run.stdout.toString() + run.stderr.toString();
  expect(out).toContain("no dependency violations found");
  const modules = Number(/(\d+) modules/.exec(out)?.[1] ?? 0);
  expect(modules).toBeGreaterThan(50); // it read the TypeScript sources (without a compiler it reads "0 modules")
  expect(run.exitCode).toBe(0);
});
