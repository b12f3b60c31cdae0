// The command-line helpers and the table of options: numbers in plain decimal only, the strict
// check of a raw command line (unknown flags refused with the nearest known one), and train.ts's
// defaults, flags, config-file checks and the sweep's checks all derived from one table.
//   bun test test/cli.test.ts

import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ArgsDef } from "citty";
import { checkArgs, parseNumber, suggest } from "../lib/util/cli.ts";
import { cittyArgs, defaultsOf, flagOf, optionsFromFlags, type OptionSpec } from "../lib/util/options.ts";
import { defaultSFTConfig, resolveSFTConfig, SFT_OPTIONS } from "../lib/train/config.ts";
import { parseTrainFlags, readRunConfigFile, RUN_OPTIONS, TRAIN_ARGS, TRAIN_OPTIONS } from "../lib/sft/run-config.ts";
import { PARAMS } from "../lib/sweep/params.ts";
import { usageError } from "./helpers/errors.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

describe("numbers", () => {
  test.each([
    ["500", { integer: true }, 500],
    ["-3", { integer: true }, -3],
    ["1e-4", {}, 1e-4],
    ["3E-4", {}, 3e-4],
    [".5", {}, 0.5],
    ["2.", {}, 2],
    ["+0.25", {}, 0.25],
    [7, { integer: true }, 7], // a number from a JSON file is taken as it is
  ])("%j reads as %p", (value, rule, expected) => {
    expect(parseNumber("x", value, rule)).toBe(expected);
  });

  test.each([
    ["0x10", { integer: true }, /--steps expects an integer, got `0x10`; write it in plain decimal, e.g. `16`/],
    ["1e2", { integer: true }, /--steps expects an integer, got `1e2`; write it in plain decimal, e.g. `100`/],
    [" 12 ", { integer: true }, /got ` 12 `; write it in plain decimal, e.g. `12`/],
    ["12.0", { integer: true }, /expects an integer, got `12.0`/],
    ["Infinity", {}, /--steps expects a number, got `Infinity`$/],
    ["0b11", {}, /e.g. `3`/],
    ["1_000", {}, /got `1_000`$/],
    ["", {}, /got ``$/],
    ["abc", { integer: true, positive: true }, /--steps expects an integer > 0, got `abc`$/],
    ["0", { integer: true, positive: true }, /> 0, got `0`/],
    ["1.5", { max: 1 }, /<= 1, got `1.5`/],
    [Infinity, {}, /got `Infinity`/],
  ])("%j is refused", (value, rule, message) => {
    expect(usageError(() => parseNumber("steps", value, rule))).toMatch(message);
  });
});

describe("strict command lines", () => {
  const ARGS: ArgsDef = {
    steps: { type: "string" },
    "eval-every": { type: "string" },
    "batch-size": { type: "string" },
    "drop-overlength": { type: "boolean" },
  };
  const WITH_DIR: ArgsDef = { dir: { type: "positional" }, ...ARGS };

  test.each([
    [[], ARGS],
    [["--steps", "6", "--eval-every=3", "--drop-overlength"], ARGS],
    [["--steps", "-1"], ARGS], // a negative value is a value (refused later by its rule, naming the flag)
    [["--drop-overlength=false", "--no-drop-overlength"], ARGS],
    [["--steps="], ARGS], // an empty value is the number parser's to refuse
    [["--nope", "--help"], ARGS], // citty prints the usage
    [["runs/x", "--steps", "2"], WITH_DIR],
  ])("accepts %j", (argv, args) => {
    expect(() => checkArgs(argv, args)).not.toThrow();
  });

  test.each([
    [["--step", "6"], ARGS, /unknown flag `--step`: did you mean `--steps`\?/],
    [["--steps", "6", "--evl-every", "3"], ARGS, /unknown flag `--evl-every`: did you mean `--eval-every`\?/],
    [["--batchSize", "4"], ARGS, /did you mean `--batch-size`\?/],
    [["--eval", "3"], ARGS, /did you mean `--eval-every`\?/],
    [["--compile"], ARGS, /^unknown flag `--compile` \(--help lists every flag\)$/],
    [["--steps=6", "--learning-rate=3"], ARGS, /unknown flag `--learning-rate=3`/],
    [["-s", "6"], ARGS, /unknown flag `-s`/],
    [["--no-steps"], ARGS, /--steps is not a switch/],
    [["--no-compile"], ARGS, /unknown flag `--no-compile`/],
    [["--drop-overlength=yes"], ARGS, /--drop-overlength is a switch: give it alone \(or --no-drop-overlength\)/],
    [["--steps"], ARGS, /--steps expects a value$/],
    [["--steps", "--eval-every", "3"], ARGS, /--steps expects a value, but the next argument is the flag `--eval-every`/],
    [["6"], ARGS, /unexpected argument `6`/],
    [["runs/x", "runs/y"], WITH_DIR, /unexpected argument `runs\/y`/],
    [["--", "x"], ARGS, /`--` is not used/],
  ])("refuses %j", (argv, args, message) => {
    expect(usageError(() => checkArgs(argv, args))).toMatch(message);
  });

  test.each([
    ["step", "steps"],
    ["temprature", "temperature"],
    ["maxTokens", "max-tokens"],
    ["eval_every", "eval-every"],
    ["wibble", undefined],
  ])("suggest(%p) = %p", (name, expected) => {
    expect(suggest(name, ["steps", "temperature", "max-tokens", "eval-every", "lr"])).toBe(expected);
  });
});

describe("one table of options", () => {
  test("the SFT defaults, each from its table entry", () => {
    expect(defaultSFTConfig()).toEqual({
      steps: 500, epochs: 10, lr: 3e-4, warmup: 20, minLrRatio: 0.1, batchSize: 8, maxSeqLen: 256, padMultiple: 16, evalEvery: 50,
      patience: 0, minDelta: 1e-3, gradClip: 1, weightDecay: 0, seed: 0, maskMode: "assistant", keep: "last",
      groupByLength: true, dropOverlength: false, truncate: false, logEvery: 10, mixProse: 0.25, neftuneAlpha: 0,
      gradAccum: 1, gradCheckpoint: false, lora: false, loraRank: 8, loraAlpha: 8, loraDropout: 0, loraTargets: "q_proj,v_proj",
      loraTokens: "chat", quantize: 0, quantizeGroupSize: 64,
    });
    expect(defaultSFTConfig()).not.toBe(defaultSFTConfig()); // a fresh object each time
    expect(defaultsOf(RUN_OPTIONS)).toMatchObject({ probeTokens: 96, name: "sft", addChatTokens: false, courseSplit: false, splitSeed: 13 });
  });

  test("train.ts has one flag per option of the table, plus --config, --resume and --preset", () => {
    const flags = Object.entries(TRAIN_OPTIONS).map(([k, s]) => flagOf(k, s as OptionSpec));
    expect(Object.keys(TRAIN_ARGS).sort()).toEqual([...flags, "config", "resume", "preset"].sort());
    expect(flags).toEqual(expect.arrayContaining(["steps", "lr", "mask", "eval-data", "max-seq-len", "group-by-length", "add-chat-tokens", "truncate", "course-split", "split-seed"]));
    expect(TRAIN_ARGS["drop-overlength"]).toMatchObject({ type: "boolean" });
    expect(TRAIN_ARGS.steps).toMatchObject({ type: "string", description: expect.stringMatching(/^optimizer steps, when --epochs is 0 .*\(default: 500\)$/) });
    expect(TRAIN_ARGS.epochs!.description).toMatch(/\(default: 10\)$/);
    expect(TRAIN_ARGS.base!.description).toMatch(/\(default: models\/gutenberg-base\)$/);
    expect(cittyArgs({ on: { type: "bool", default: true, help: "a switch" } }).on).toMatchObject({ negativeDescription: "turn off --on" });
  });

  test("flags parse through the table: values checked, absent flags absent", () => {
    expect(parseTrainFlags({ steps: "30", lr: "1e-4", mask: "all", "no-use": 1, "drop-overlength": true, "group-by-length": false, "eval-data": "e.json" }))
      .toEqual({ steps: 30, lr: 1e-4, maskMode: "all", dropOverlength: true, groupByLength: false, evalData: "e.json" });
    expect(usageError(() => parseTrainFlags({ steps: "0x10" }))).toMatch(/--steps expects an integer > 0, got `0x10`/);
    expect(usageError(() => parseTrainFlags({ keep: "first" }))).toBe("--keep expects best or last, got `first`");
    expect(usageError(() => parseTrainFlags({ base: "" }))).toBe("--base expects a value");
    expect(usageError(() => parseTrainFlags({ name: "a b" }))).toMatch(/--name `a b` may only contain letters/);
    expect(optionsFromFlags(SFT_OPTIONS, {})).toEqual({});
  });

  test("validation of a config (file or caller) comes from the same table", () => {
    expect(() => resolveSFTConfig({ warmup: -1 })).toThrow("warmup must be an integer >= 0, got `-1`");
    expect(() => resolveSFTConfig({ keep: "first" as "best" })).toThrow('keep must be "best" or "last", got `"first"`');
    expect(() => resolveSFTConfig({ groupByLength: "yes" as unknown as boolean })).toThrow("groupByLength must be true or false");
    const dir = mkdtempSync(join(tmpdir(), "cli-test-"));
    const file = join(dir, "run.json");
    writeFileSync(file, JSON.stringify({ "group-by-length": false, "pad-multiple": 8, name: "ok" }));
    expect(readRunConfigFile(file)).toEqual({ groupByLength: false, padMultiple: 8, name: "ok" });
    writeFileSync(file, JSON.stringify({ name: "a/b" }));
    expect(usageError(() => readRunConfigFile(file))).toMatch(/name must be a string of letters, digits/);
  });

  test("the sweep checks train.ts's values with the table's entry and sets the table's flag", () => {
    expect([PARAMS.lr.trainFlag, PARAMS.steps.trainFlag, PARAMS.mask.trainFlag]).toEqual(["lr", "steps", "mask"]);
    expect(usageError(() => PARAMS.steps.check("0x10"))).toMatch(/--values expects an integer > 0, got `0x10`/);
    expect(usageError(() => PARAMS.lr.check("0"))).toMatch(/--values expects a number > 0, got `0`/);
    expect(PARAMS.lr.check("3e-4")).toBe("3e-4");
  });
});
