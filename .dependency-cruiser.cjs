// The architecture rule, checked in CI (bun run arch; test/architecture.test.ts runs it too):
// no import cycles between files, and folders of lib/ only import folders below them.
// Layers, lowest first; a folder may import its own layer and any layer below it.
const LAYERS = [
  ["util"], // dependency-free helpers: seeded random, command-line parsing, Ctrl-C, paths
  ["io", "mlx", "tokenizer"], // safe files; the native boundary; tokenizer.json
  ["format"], // the chat format: special tokens, template, (ids, mask)
  ["model", "data"], // the decoder and checkpoints; rows -> conversations -> batches
  ["train", "generate"], // loss, step, schedule, trainer; token generation
  ["probes", "run"], // base-vs-SFT probes; the run folder
  ["report", "chat", "pretrain"], // samples and report.html; the chat REPL; pretraining
  ["sft", "sweep", "export"], // one SFT run end to end; a series of runs; a run handed to another engine
  ["bench"], // measurements
];
const below = (i) => LAYERS.slice(0, i + 1).flat();
module.exports = {
  forbidden: [
    { name: "no-cycles", severity: "error", comment: "a file must not reach itself through its imports", from: {}, to: { circular: true } },
    ...LAYERS.flatMap((folders, i) => folders.map((folder) => ({
      name: `layer-${folder}`,
      severity: "error",
      comment: `lib/${folder}/ may import only lib/{${below(i).join(",")}}/`,
      from: { path: `^lib/${folder}/` },
      to: { path: "^lib/", pathNot: `^lib/(${below(i).join("|")})/` },
    }))),
    { name: "lib-not-scripts", severity: "error", comment: "lib/ never imports scripts/ or test/", from: { path: "^lib/" }, to: { path: "^(scripts|test)/" } },
    { name: "no-loose-lib-files", severity: "error", comment: "every module of lib/ lives in a folder named for its job", from: { path: "^lib/[^/]+\\.ts$" }, to: {} },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "node_modules" },
    tsPreCompilationDeps: true,
    moduleSystems: ["es6"],
  },
};
