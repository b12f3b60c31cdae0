// Preloaded by bun test (bunfig.toml): the default per-test timeout. The slowest tests train a tiny
// model for tens of steps or drive the chat REPL through tmux; on a loaded 2-core machine they need
// more than Bun's 5 s default.
import { setDefaultTimeout } from "bun:test";

setDefaultTimeout(60_000); // ms
