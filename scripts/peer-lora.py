# /tmp/tv/bin/python scripts/peer-lora.py --variant lora-qv          # one JSON line on stdout
#
# The PyTorch + PEFT peer of `bun scripts/bench.ts --case lora`: one training step of the same model
# on the same CPU, timed and measured. The model is transformers' LlamaForCausalLM with the shapes of
# Qwen3-0.6B-Base (hidden 1024, 28 layers, 16 heads of 128, 8 key/value heads, MLP 3072, vocabulary
# 151,936, tied), random init, float32 (what this project computes in on the CPU); batch 4 × 128
# random ids, every position supervised; AdamW. Variants:
#   full       every weight trains
#   lora-qv    PEFT LoRA r 8, alpha 8 on q_proj, v_proj (the course's)
#   lora-all   PEFT LoRA r 8, alpha 8 on every linear layer ("all-linear")
# --grad-checkpoint turns on transformers' gradient checkpointing. QLoRA has no CPU path in PEFT
# (bitsandbytes 4-bit is CUDA only), so there is no qlora variant here.
#
# Peak memory: the process's peak resident set (VmHWM) over the whole run, and over the timed steps
# only (VmHWM reset through /proc/self/clear_refs after building the model), in MB.
import argparse
import json
import os
import time

import torch

SHAPE = dict(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
             num_key_value_heads=8, head_dim=128, max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0,
             tie_word_embeddings=True)
BATCH, SEQ = 4, 128


def vm_hwm_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def reset_hwm():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident set (Linux)


def main():
    ap = argparse.ArgumentParser(description="PyTorch + PEFT training step on the Qwen3-0.6B shapes")
    ap.add_argument("--variant", choices=["full", "lora-qv", "lora-all"], required=True)
    ap.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    ap.add_argument("--grad-checkpoint", action="store_true")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: every core)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SHAPE)).float()
    if args.grad_checkpoint:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if args.variant != "full":
        from peft import LoraConfig, get_peft_model

        targets = ["q_proj", "v_proj"] if args.variant == "lora-qv" else "all-linear"
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=8, lora_dropout=0.0, target_modules=targets, task_type="CAUSAL_LM"))
        if args.grad_checkpoint:
            model.enable_input_require_grads()  # checkpointing a frozen embedding's output needs this
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    ids = torch.randint(0, SHAPE["vocab_size"], (BATCH, SEQ + 1), generator=torch.Generator().manual_seed(0))
    inputs, labels = ids[:, :-1], ids[:, 1:]

    def step():
        logits = model(input_ids=inputs).logits  # [B, T, V]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    step()  # warm-up: allocator, optimizer state
    setup_peak = vm_hwm_mb()
    reset_hwm()
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    step_peak = vm_hwm_mb()
    mid = sorted(times)[len(times) // 2]
    print(json.dumps({
        "stack": "torch+peft" if args.variant != "full" else "torch",
        "variant": args.variant,
        "gradCheckpoint": args.grad_checkpoint,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "trainable": sum(p.numel() for p in trainable),
        "tokensPerSec": BATCH * SEQ / mid,
        "stepMs": 1000 * mid,
        "stepsMs": [round(1000 * t) for t in times],
        "stepPeakRssMB": step_peak,
        "peakRssMB": max(step_peak, setup_peak),
    }))


if __name__ == "__main__":
    main()
