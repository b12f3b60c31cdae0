# python3 scripts/check-hf.py <checkpoint dir> [--ts dump.json] [--prompt "Once upon a time"] [--tokens 20]
#
# One-off interop check (not a test dependency): does a checkpoint this project saved load in
# transformers and compute the same thing? Loads it with AutoModelForCausalLM and AutoTokenizer,
# then compares with what the TypeScript side computed (scripts/dump-logits.ts, run here unless
# --ts gives its JSON): max |logit difference| for fixed ids, the greedy continuation of a prompt,
# apply_chat_template(...) against ChatTemplate.render / renderPrompt, its assistant-token mask against
# renderWithMask's training mask, and the chat tokens' ids.
# Exit code 1 if any check fails.
#
# Needs torch and transformers (install for the check only, e.g. in a venv):
#   pip install /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl transformers
import argparse
import json
import os
import subprocess
import sys
import tempfile

LOGIT_TOLERANCE = 1e-3  # float32 on both sides; different kernels differ by ~1e-6 per op
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dump_from_ts(ckpt, prompt, tokens):
    """Run scripts/dump-logits.ts and return its JSON."""
    out = os.path.join(tempfile.mkdtemp(prefix="check-hf-"), "ts.json")
    cmd = ["bun", "scripts/dump-logits.ts", ckpt, "--prompt", prompt, "--tokens", str(tokens), "--out", out]
    subprocess.run(cmd, cwd=ROOT, check=True)
    with open(out) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dir", help="checkpoint directory saved by this project")
    ap.add_argument("--ts", help="JSON from scripts/dump-logits.ts (default: run it now)")
    ap.add_argument("--prompt", default="Once upon a time", help="prompt for the greedy continuation")
    ap.add_argument("--tokens", type=int, default=20, help="greedy tokens to generate")
    args = ap.parse_args()
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        sys.exit(f"check-hf: {e}. Install for this check only: pip install "
                 "/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl transformers")

    ckpt = os.path.abspath(args.dir)
    if args.ts:
        with open(args.ts) as f:
            ts = json.load(f)
    else:
        ts = dump_from_ts(ckpt, args.prompt, args.tokens)
    failures = []

    def check(name, ok, detail):
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
        if not ok:
            failures.append(name)

    model, info = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32, output_loading_info=True)
    model.eval()
    problems = {k: v for k, v in info.items() if v}
    check("load", not problems, f"{type(model).__name__}, {sum(p.numel() for p in model.parameters()):,} parameters"
          + (f", {problems}" if problems else ", no missing/unexpected/mismatched tensors"))
    tok = AutoTokenizer.from_pretrained(ckpt)

    with torch.no_grad():
        hf_logits = model(torch.tensor([ts["ids"]])).logits[0]
    diff = (hf_logits - torch.tensor(ts["logits"])).abs().max().item()
    check("logits", diff < LOGIT_TOLERANCE, f"max |logit difference| {diff:.3g} over ids {ts['ids']} (tolerance {LOGIT_TOLERANCE})")

    prompt_ids = tok.encode(ts["prompt"], add_special_tokens=False)
    check("prompt ids", prompt_ids == ts["promptIds"], f"{ts['prompt']!r} -> {prompt_ids}" + ("" if prompt_ids == ts["promptIds"] else f" vs TS {ts['promptIds']}"))
    n = len(ts["greedyIds"])
    with torch.no_grad():
        out = model.generate(torch.tensor([ts["promptIds"]]), max_new_tokens=n, min_new_tokens=n, do_sample=False,
                             eos_token_id=None, pad_token_id=tok.pad_token_id)
    hf_greedy = out[0, len(ts["promptIds"]):].tolist()
    check("greedy", hf_greedy == ts["greedyIds"], f"{tok.decode(hf_greedy, skip_special_tokens=True)!r}"
          + ("" if hf_greedy == ts["greedyIds"] else f"\n     HF {hf_greedy}\n     TS {ts['greedyIds']}"))

    for token, id_ in ts["specialIds"].items():
        hf_id = tok.convert_tokens_to_ids(token)
        check(f"id of {token}", hf_id == id_ and len(tok.encode(token, add_special_tokens=False)) == 1, f"HF {hf_id}, TS {id_}")
    check("eos/pad", (tok.eos_token, tok.pad_token) == ("<|end|>", "<|pad|>"), f"eos {tok.eos_token!r}, pad {tok.pad_token!r}")

    for i, chat in enumerate(ts["chats"]):
        text = tok.apply_chat_template(chat["messages"], tokenize=False)
        check(f"chat {i} render", text == chat["render"], repr(text) if text != chat["render"] else "apply_chat_template == ChatTemplate.render")
        prompt = tok.apply_chat_template(chat["promptMessages"], tokenize=False, add_generation_prompt=True)
        check(f"chat {i} prompt", prompt == chat["renderPrompt"], repr(prompt) if prompt != chat["renderPrompt"] else "add_generation_prompt == ChatTemplate.renderPrompt")
        hf_ids = tok(text, add_special_tokens=False)["input_ids"]
        looks_special = any(t in m["content"] for m in chat["messages"] for t in ts["specialIds"])
        if looks_special:
            # transformers splits added tokens out of any text, message content included; our
            # tokenizer never does (no injection), so the ids are expected to differ here.
            print(f"note chat {i} ids: HF {'differs' if hf_ids != chat['ids'] else 'agrees'} on message text that looks like a "
                  "chat token (transformers turns it into the special id; this project does not)")
        else:
            check(f"chat {i} ids", hf_ids == chat["ids"], "tokenized render == renderWithMask ids" if hf_ids == chat["ids"] else f"HF {hf_ids}\n     TS {chat['ids']}")
            # The template's {% generation %} markers: transformers' assistant mask is the training mask.
            hf_mask = tok.apply_chat_template(chat["messages"], tokenize=True, return_dict=True, return_assistant_tokens_mask=True)["assistant_masks"]
            check(f"chat {i} mask", hf_mask == chat["mask"], "return_assistant_tokens_mask == renderWithMask mask" if hf_mask == chat["mask"] else f"HF {hf_mask}\n     TS {chat['mask']}")

    print(f"{len(failures)} check(s) failed: {', '.join(failures)}" if failures else "all checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
