// What one line of chat input means: a message for the model, an in-session command, or nothing.
// A line starting with "/" is a command; "//" escapes a message that itself starts with "/".

export type CommandName = "reset" | "history" | "params" | "compare" | "save" | "help" | "quit";

export type ChatInput =
  | { kind: "empty" }
  | { kind: "message"; text: string }
  | { kind: "command"; name: CommandName; arg: string }
  | { kind: "error"; message: string };

interface CommandSpec {
  name: CommandName;
  usage: string;
  description: string;
  aliases?: string[];
  needsArg?: boolean;
}

const COMMANDS: CommandSpec[] = [
  { name: "reset", usage: "/reset", description: "start a new conversation" },
  { name: "history", usage: "/history", description: "show the conversation (and what still fits in the context)" },
  { name: "params", usage: "/params [name=value ...]", description: "show sampling parameters, or set some: /params temperature=0.2 top_p=0.9" },
  { name: "compare", usage: "/compare [prompt]", description: "the last (or given) prompt through the base model as raw continuation, side by side with the fine-tuned reply" },
  { name: "save", usage: "/save <file.json|file.jsonl>", description: "write the conversation in the training data format", needsArg: true },
  { name: "help", usage: "/help", description: "this list", aliases: ["?"] },
  { name: "quit", usage: "/quit", description: "leave (Ctrl-D works too)", aliases: ["exit", "q"] },
];

/** Parse one line of input. Messages are trimmed; commands are matched case-insensitively. */
export function parseInput(line: string): ChatInput {
  const text = line.trim();
  if (text === "") return { kind: "empty" };
  if (text.startsWith("//")) return { kind: "message", text: text.slice(1) };
  if (!text.startsWith("/")) return { kind: "message", text };
  const [word, ...rest] = text.slice(1).split(/\s+/);
  const arg = rest.join(" ");
  const name = word.toLowerCase();
  const spec = COMMANDS.find((c) => c.name === name || c.aliases?.includes(name));
  if (!spec) {
    return { kind: "error", message: `unknown command \`/${word}\`: type /help for the list (start a message with // to send a leading /)` };
  }
  if (spec.needsArg && !arg) return { kind: "error", message: `/${spec.name} needs an argument: ${spec.usage}` };
  return { kind: "command", name: spec.name, arg };
}

/** The `/help` text, one command per line. */
export function helpText(): string {
  const width = Math.max(...COMMANDS.map((c) => c.usage.length));
  return [
    ...COMMANDS.map((c) => `  ${c.usage.padEnd(width)}  ${c.description}`),
    "  Ctrl-C stops a reply; at the prompt it clears the line (twice: exit). Ctrl-D exits.",
  ].join("\n");
}
