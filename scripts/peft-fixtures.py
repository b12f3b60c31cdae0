# /tmp/tv/bin/python scripts/peft-fixtures.py          # rewrites test/fixtures/peft/<name>/ for every fixture
# /tmp/tv/bin/python scripts/peft-fixtures.py --only llama-all-linear
#
# LoRA adapter fixtures from PEFT, run by hand (never by CI): for each fixture, a PEFT LoraConfig on
# one of the transformers fixtures in test/fixtures/hf/ (the base, not copied), its A and B drawn at
# random (B is zero at PEFT's init, which would pin nothing) together with trainable token rows
# (`trainable_token_indices`), saved with PeftModel.save_pretrained, then reloaded with
# PeftModel.from_pretrained onto a fresh base; expected.json holds that model's logits for fixed
# input ids that include the trainable tokens. test/peft-conformance.test.ts loads each adapter with
# the project's loader and must give the same logits. Nothing comes from the Hub.
#
# The committed fixtures were made with peft 0.21.0, transformers 5.18.0, torch 2.13.0+cpu, in the
# venv /tmp/tv (pip install torch transformers peft from the local package store).
import argparse
import json
import os
import shutil
import sys

import peft
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM
from transformers.utils import logging as hf_logging

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HF = os.path.join(ROOT, "test", "fixtures", "hf")
FIXTURES = os.path.join(ROOT, "test", "fixtures", "peft")
MIN_CHANGE = 1.0  # the adapter must move some logit by at least this much, or a missing piece could pass

# name: (seed, base fixture, LoraConfig kwargs). Token ids are spare rows of the base (ids past its
# tokenizer), as the chat tokens take in a base such as Qwen3; one of them is in the input ids.
FIXTURES_SPEC = {
    # untied head: trainable rows in the embedding and in lm_head; every linear layer; alpha/r = 2
    "llama-all-linear": (11, "llama", dict(r=4, lora_alpha=8, target_modules="all-linear",
                                           trainable_token_indices={"embed_tokens": [344, 345, 350], "lm_head": [344, 345, 350]})),
    # tied head with q/k/v bias: the course's q_proj, v_proj at r 8, alpha 8; one row set serves both
    "qwen2-qv": (12, "qwen2-legacy-config", dict(r=8, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                 trainable_token_indices={"embed_tokens": [352, 360]})),
}


def randomize_adapter(model, seed):
    """A and B at a scale where the update is a sizeable part of each layer's output; trainable rows
    like the base's embedding rows."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                p.copy_(0.2 * torch.randn_like(p))
            elif "trainable_tokens_delta" in name:
                p.copy_(0.5 * torch.randn_like(p))


def write_fixture(name):
    seed, base_name, kwargs = FIXTURES_SPEC[name]
    base_dir = os.path.join(HF, base_name)
    with open(os.path.join(base_dir, "expected.json")) as f:
        base_expected = json.load(f)
    token_ids = sorted({i for ids in kwargs["trainable_token_indices"].values() for i in ids})
    input_ids = base_expected["input_ids"][:6] + token_ids[:1] + base_expected["input_ids"][6:]

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        base_logits = base(torch.tensor([input_ids])).logits[0]
    model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", **kwargs))
    randomize_adapter(model, seed)
    out_dir = os.path.join(FIXTURES, name)
    shutil.rmtree(out_dir, ignore_errors=True)
    model.save_pretrained(out_dir)
    os.remove(os.path.join(out_dir, "README.md"))  # PEFT's model card template: nothing the test reads
    config_path = os.path.join(out_dir, "adapter_config.json")
    with open(config_path) as f:
        config = json.load(f)
    config["base_model_name_or_path"] = f"../../hf/{base_name}"  # relative to the adapter folder (PEFT wrote this machine's absolute path)
    with open(config_path, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    os.chmod(os.path.join(out_dir, "adapter_model.safetensors"), 0o644)  # safetensors writes it private

    # The expected logits come from the adapter as PEFT reads it back onto a fresh base.
    fresh = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    loaded = PeftModel.from_pretrained(fresh, out_dir).eval()
    with torch.no_grad():
        logits = loaded(torch.tensor([input_ids])).logits[0]  # [T, V]
        same = (logits - model(torch.tensor([input_ids])).logits[0]).abs().max().item()
    assert same == 0, f"{name}: the reloaded adapter differs from the saved one by {same}"
    change = (logits - base_logits).abs().max().item()
    if change < MIN_CHANGE:
        sys.exit(f"{name}: the adapter moves the logits by only {change:.3g}")
    expected = {
        "name": name,
        "base": f"../../hf/{base_name}",
        "peft_version": peft.__version__,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "seed": seed,
        "input_ids": input_ids,
        "logits": [[float(f"{x:.9g}") for x in row] for row in logits.tolist()],  # 9 digits: exact float32
        "max_change_from_base": round(change, 4),
    }
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump(expected, f, separators=(",", ":"))
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(f"{name:18s} base {base_name:20s} | r {kwargs['r']} alpha {kwargs['lora_alpha']} | "
          f"logits move up to {change:.2f} from the base | {size / 1024:.0f} KB")


def main():
    ap = argparse.ArgumentParser(description="Write LoRA adapter fixtures with PEFT.")
    ap.add_argument("--only", action="append", choices=sorted(FIXTURES_SPEC), help="write only this fixture")
    args = ap.parse_args()
    hf_logging.disable_progress_bar()
    print(f"peft {peft.__version__}, transformers {transformers.__version__}, torch {torch.__version__}")
    for name in args.only or list(FIXTURES_SPEC):
        write_fixture(name)


if __name__ == "__main__":
    main()
