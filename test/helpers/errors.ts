// The message of the UsageError a call throws (anything else is rethrown; no throw fails the test).
import { UsageError } from "../../lib/util/cli.ts";

export const usageError = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    if (e instanceof UsageError) return e.message;
    throw e;
  }
  throw new Error("expected a UsageError");
};
