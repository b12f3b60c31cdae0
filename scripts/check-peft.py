# /tmp/tv/bin/python scripts/check-peft.py <adapter dir> [--base DIR] [--ts dump.json]
#
# One-off interop check (not a test dependency), the other direction of test/peft-conformance.test.ts:
# does an adapter this project saved (a LoRA run's adapter/) load in PEFT and compute what this
# project computes? Loads the base with transformers (grown to the adapter tokenizer's size when the
# run added the chat tokens: their rows come from the adapter's trainable_token_indices), then
# PeftModel.from_pretrained, and compares with scripts/dump-logits.ts run on the same adapter folder:
# max |logit difference| for fixed ids, and the greedy continuation of a prompt. Exit code 1 if a
# check fails. Needs torch, transformers and peft (e.g. the venv /tmp/tv).
import argparse
import json
import os
import subprocess
import sys
import tempfile

LOGIT_TOLERANCE = 1e-3  # float32 on both sides (as scripts/check-hf.py)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("adapter", help="adapter folder saved by this project (runs/<dir>/adapter)")
    ap.add_argument("--base", help="base checkpoint folder (default: the adapter's base_model_name_or_path)")
    ap.add_argument("--ts", help="JSON from scripts/dump-logits.ts (default: run it now)")
    ap.add_argument("--prompt", default="<|user|>\nWhat is a noun?\n<|assistant|>\n", help="prompt for the greedy continuation")
    ap.add_argument("--tokens", type=int, default=20)
    args = ap.parse_args()
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = os.path.abspath(args.adapter)
    with open(os.path.join(adapter, "adapter_config.json")) as f:
        config = json.load(f)
    base = args.base or config["base_model_name_or_path"]
    # ordinary ids, then every trainable token (the added chat tokens' rows come from the adapter)
    rows = config.get("trainable_token_indices") or {}
    ids = [1, 2, 3, 10, 20, 30] + sorted({i for v in (rows.values() if isinstance(rows, dict) else [rows]) for i in v})
    ts_path = args.ts
    if not ts_path:
        ts_path = os.path.join(tempfile.mkdtemp(prefix="check-peft-"), "ts.json")
        cmd = ["bun", "scripts/dump-logits.ts", adapter, "--ids", ",".join(map(str, ids)), "--prompt", args.prompt, "--tokens", str(args.tokens), "--out", ts_path]
        subprocess.run(cmd, cwd=ROOT, check=True)
    with open(ts_path) as f:
        ts = json.load(f)

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(adapter)
    if len(tok) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tok))  # the new rows are the adapter's trainable token rows
    model = PeftModel.from_pretrained(model, adapter).eval()
    failures = []

    def check(name, ok, detail):
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
        if not ok:
            failures.append(name)

    with torch.no_grad():
        logits = model(torch.tensor([ts["ids"]])).logits[0]
    diff = (logits - torch.tensor(ts["logits"])).abs().max().item()
    check("logits", diff < LOGIT_TOLERANCE, f"max |logit difference| {diff:.3g} over ids {ts['ids']} (tolerance {LOGIT_TOLERANCE}), PEFT on {base}")
    n = len(ts["greedyIds"])
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([ts["promptIds"]]), max_new_tokens=n, min_new_tokens=n, do_sample=False,
                             eos_token_id=None, pad_token_id=tok.pad_token_id)
    greedy = out[0, len(ts["promptIds"]):].tolist()
    check("greedy", greedy == ts["greedyIds"], f"{tok.decode(greedy)!r}" + ("" if greedy == ts["greedyIds"] else f"\n     PEFT {greedy}\n     TS   {ts['greedyIds']}"))
    print(f"{len(failures)} check(s) failed: {', '.join(failures)}" if failures else "all checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
