// The suite's own rules: every test file takes the suite's timeout (Bun's setDefaultTimeout reaches
// only the file that calls it, so a file without the call runs its tests at 5 s and fails on a cold
// kernel cache).
//   bun test test/suite.test.ts
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

test("every test file calls useSuiteTimeout() at its top level", () => {
  const files = readdirSync(import.meta.dir).filter((f) => f.endsWith(".test.ts"));
  const missing = files.filter((f) => !/^useSuiteTimeout\([^)]*\);/m.test(readFileSync(join(import.meta.dir, f), "utf8")));
  expect(files.length).toBeGreaterThan(40);
  expect(missing).toEqual([]);
});
