// bun scripts/postinstall.ts   (runs by itself after `bun install`: package.json "postinstall")
//
// Makes the native MLX binding usable. bun install blocks @frost-beta/mlx's own install script,
// which downloads the binary from GitHub; we keep it blocked (not in trustedDependencies) because
// the Linux x64 binary already ships in the package and the download fails offline.
// - macOS arm64: runs the package's install.js when the Metal build (mlx.metallib) is missing.
// - Linux: checks that mlx.node is there and that the loader finds libblas/liblapack; it only
//   prints the fix, and never fails the install.

import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { defineCommand, runMain } from "citty";
import { consola } from "consola";

const log = consola.withTag("postinstall");
const MLX_DIR = resolve(import.meta.dir, "..", "node_modules", "@frost-beta", "mlx");
const BINARY = join(MLX_DIR, "build", "Release", "mlx.node");
const METALLIB = join(MLX_DIR, "build", "Release", "mlx.metallib");
const APT_FIX = "apt-get update && apt-get install -y libopenblas0-pthread liblapack3";

function installMetalBuild(): void {
  if (existsSync(METALLIB)) return; // the package ships the Linux binary; the Metal build comes with its metallib
  const runtime = Bun.which("node") ?? process.execPath; // install.js is CommonJS; bun runs it too
  log.start(`downloading the MLX Metal build: \`${runtime} install.js\` in ${MLX_DIR}`);
  const { exitCode } = Bun.spawnSync([runtime, "install.js"], { cwd: MLX_DIR, stdout: "inherit", stderr: "inherit" });
  if (exitCode !== 0 || !existsSync(METALLIB)) {
    log.error(`MLX download failed (exit ${exitCode}); check the network, then run \`bun scripts/postinstall.ts\``);
    process.exit(1);
  }
  log.success("MLX Metal build installed");
}

function checkLinuxBinary(): void {
  if (!existsSync(BINARY)) {
    log.warn(`\`${BINARY}\` is missing: reinstall with \`rm -rf node_modules && bun install\``);
    return;
  }
  if (process.arch !== "x64") {
    log.warn(`@frost-beta/mlx ships a Linux x64 binary only; this is ${process.arch}`);
    return;
  }
  // ldd lists every shared library the loader cannot find as "libX.so.N => not found".
  const ldd = Bun.which("ldd") ? Bun.spawnSync(["ldd", BINARY], { stderr: "ignore" }) : undefined;
  const missing = ldd ? [...ldd.stdout.toString().matchAll(/^\s*(\S+) => not found/gm)].map((m) => m[1]) : [];
  if (missing.length) {
    log.warn(`MLX needs ${missing.map((m) => `\`${m}\``).join(", ")}: install with \`${APT_FIX}\`, then \`bun scripts/doctor.ts\``);
    return;
  }
  log.info("MLX binary present; `bun scripts/doctor.ts` checks the rest");
}

const main = defineCommand({
  meta: { name: "postinstall", description: "Make the native MLX binding usable on this platform" },
  run() {
    if (!existsSync(MLX_DIR)) {
      log.warn("@frost-beta/mlx is not installed; run `bun install`");
    } else if (process.platform === "darwin" && process.arch === "arm64") {
      installMetalBuild();
    } else if (process.platform === "linux") {
      try {
        checkLinuxBinary();
      } catch (e) {
        log.warn(`could not check the MLX binary (${e instanceof Error ? e.message : e}); run \`bun scripts/doctor.ts\``);
      }
    } else {
      log.warn(`${process.platform}-${process.arch} is not supported: use Linux x64 or macOS on Apple silicon`);
    }
  },
});

runMain(main);
