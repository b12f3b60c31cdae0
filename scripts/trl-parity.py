# /tmp/tv/bin/python scripts/trl-parity.py --export runs/<dir>/export-trl [--steps 20] [--tolerance 1e-4]
#
# Does the exported TRL job (bun scripts/export.ts --format trl --run runs/<dir>) train what the
# project trained? Run by hand, not by CI (it needs torch, transformers and trl). Checks, and prints:
#   1. masks: transformers' apply_chat_template(return_assistant_tokens_mask=True) on the export's
#      starting checkpoint (or --checkpoint, any checkpoint the project saved) gives the project's ids
#      and supervised span on every training and held-out row;
#   2. TRL: SFTTrainer's tokenized rows (input_ids, labels) and the held-out rows equal the project's;
#   3. losses: the first --steps steps of the exported job against the run's metrics.jsonl: the first
#      step's loss within 1e-5, every step within --tolerance, the lr of every step, held-out losses.
# For step 3 the run must log every step (bun scripts/train.ts --log-every 1 ...); otherwise its
# report windows are compared (token-weighted over the same steps). Exit code 1 if a check fails.
import argparse
import importlib.util
import json
import os
import sys
import tempfile

FIRST_STEP_TOLERANCE = 1e-5  # nats/token: one forward pass on identical weights, fp32 on both sides


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def compare_rows(name, got, want):
    """got/want: lists of (ids, mask). Prints rows, differing rows and supervised targets (mask[1:])."""
    bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w] + list(range(min(len(got), len(want)), max(len(got), len(want))))
    targets = sum(sum(m[1:]) for _, m in got)
    want_targets = sum(sum(m[1:]) for _, m in want)
    print(f"{'ok  ' if not bad else 'FAIL'} {name}: {len(got)} rows checked against the project's {len(want)}, {len(bad)} differ; "
          f"supervised targets {targets} (project {want_targets})" + (f"; first differing rows {bad[:10]}" if bad else ""))
    return not bad


def load_module(path):
    spec = importlib.util.spec_from_file_location("train_trl", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def windows(project, trl_steps):
    """The project's report windows [(first step, last step, loss, ntoks)], and TRL's per-step records
    token-weighted over the same windows."""
    out, prev = [], 0
    for rec in project:
        steps = [trl_steps[s] for s in range(prev + 1, rec["step"] + 1) if s in trl_steps]
        if len(steps) == rec["step"] - prev:
            n = sum(s["ntoks"] for s in steps)
            out.append((prev + 1, rec["step"], rec, sum(s["loss"] * s["ntoks"] for s in steps) / n, n))
        prev = rec["step"]
    return out


def main():
    ap = argparse.ArgumentParser(description="Compare an exported TRL job with the project's run")
    ap.add_argument("--export", required=True, help="folder written by bun scripts/export.ts --format trl")
    ap.add_argument("--steps", type=int, default=20, help="steps of the TRL job to run and compare")
    ap.add_argument("--tolerance", type=float, default=1e-4, help="max |TRL - project| loss of each of the first --steps steps, nats/token (measured: 1.3e-5 over 20 steps, 9.6e-4 over 500)")
    ap.add_argument("--metrics", help="the project's metrics.jsonl (default: the exported run's)")
    ap.add_argument("--checkpoint", help="checkpoint whose chat template the mask check uses (default: the export's start/)")
    args = ap.parse_args()
    try:
        from transformers import AutoTokenizer
    except ImportError as e:
        sys.exit(f"trl-parity: {e}. Install: pip install torch transformers trl accelerate datasets")

    export = os.path.abspath(args.export)
    manifest = json.load(open(os.path.join(export, "export.json")))
    files, mask_mode = manifest["files"], manifest["config"]["maskMode"]
    reference = {k: [(r["ids"], r["mask"]) for r in read_jsonl(os.path.join(export, files[f"reference{k.title()}"]))] for k in ("train", "eval")}
    data = {"train": read_jsonl(os.path.join(export, files["train"])), "eval": read_jsonl(os.path.join(export, files["eval"]))}
    ok = True

    # 1. The checkpoint's own template gives the project's mask (held-out rows: always assistant).
    checkpoint = os.path.abspath(args.checkpoint or os.path.join(export, files["start"]))
    tok = AutoTokenizer.from_pretrained(checkpoint)
    for split in ("train", "eval") if mask_mode == "assistant" else ("eval",):
        rendered = [tok.apply_chat_template(r["messages"], tokenize=True, return_dict=True, return_assistant_tokens_mask=True) for r in data[split]]
        ok &= compare_rows(f"transformers mask, {split} ({checkpoint})", [(r["input_ids"], r["assistant_masks"]) for r in rendered], reference[split])

    # 2. TRL's rows, as its trainer will train and evaluate on them.
    train_trl = load_module(os.path.join(export, files["script"]))
    out = os.path.join(tempfile.mkdtemp(prefix="trl-parity-"), "output")
    trainer = train_trl.build(out, stop_after=args.steps)
    trl_train = [(r["input_ids"], [int(label != -100) for label in r["labels"]]) for r in trainer.train_dataset]
    ok &= compare_rows("TRL SFTTrainer rows, train", trl_train, reference["train"])
    evaluation = next(c for c in trainer.callback_handler.callbacks if isinstance(c, train_trl.ProjectEvaluation))
    ok &= compare_rows("TRL held-out rows, eval", [(r["input_ids"], r["assistant_masks"]) for r in evaluation.rows], reference["eval"])

    # 3. Losses and lr, step by step.
    trainer.train()
    trl = read_jsonl(os.path.join(out, "metrics.jsonl"))
    trl_steps = {r["step"]: r for r in trl if r["type"] == "train"}
    metrics_path = args.metrics or (os.path.join(manifest["run"], "metrics.jsonl") if manifest.get("run") else None)
    if not metrics_path or not os.path.exists(metrics_path):
        print("FAIL losses: no project metrics.jsonl (export from a run, or pass --metrics)")
        sys.exit(1)
    project = read_jsonl(metrics_path)
    compared = windows([r for r in project if r["type"] == "train"], trl_steps)
    if not compared:
        print(f"FAIL losses: no report window of {metrics_path} within the first {args.steps} steps")
        sys.exit(1)
    diffs = [(a, b, abs(mine - rec["loss"]), rec, mine, n) for a, b, rec, mine, n in compared]
    first = diffs[0]
    if first[0] == first[1] == 1:
        step1 = first[2] <= FIRST_STEP_TOLERANCE
        ok &= step1
        print(f"{'ok  ' if step1 else 'FAIL'} step 1 loss: TRL {first[4]:.8f}, project {first[3]['loss']:.8f}, |diff| {first[2]:.2e} (tolerance {FIRST_STEP_TOLERANCE:.0e})")
    else:
        print(f"note step 1: {metrics_path} logs every {first[1]} steps; run the project with --log-every 1 for the first-step check")
    worst = max(diffs, key=lambda d: d[2])
    within = worst[2] <= args.tolerance
    ok &= within
    unit = "steps" if all(a == b for a, b, *_ in diffs) else "report windows"
    print(f"{'ok  ' if within else 'FAIL'} losses of {len(diffs)} {unit} (steps 1-{diffs[-1][1]}): max |diff| {worst[2]:.2e} at step {worst[1]} "
          f"(tolerance {args.tolerance:.0e}); mean |diff| {sum(d[2] for d in diffs) / len(diffs):.2e}")
    ntoks_same = all(d[5] == d[3]["ntoks"] for d in diffs)
    ok &= ntoks_same
    print(f"{'ok  ' if ntoks_same else 'FAIL'} supervised targets per {unit[:-1]}: " + ("identical" if ntoks_same else "differ") + f" ({sum(d[5] for d in diffs)} in all)")
    lr_err = max(abs(trl_steps[b]["lr"] - rec["lr"]) / rec["lr"] for a, b, _, rec, _, _ in diffs)
    ok &= lr_err < 1e-6
    print(f"{'ok  ' if lr_err < 1e-6 else 'FAIL'} lr of {'each step' if unit == 'steps' else 'the last step of each report window'}: max relative difference {lr_err:.1e}")
    for rec in (r for r in project if r["type"] == "eval"):
        mine = next((r for r in trl if r["type"] == "eval" and r["step"] == rec["step"]), None)
        if mine:
            print(f"     held-out loss at step {rec['step']}: TRL {mine['evalLoss']:.6f}, project {rec['evalLoss']:.6f}, |diff| {abs(mine['evalLoss'] - rec['evalLoss']):.1e}")
    print("per step (step, TRL, project, |diff|): " + ", ".join(f"({b}, {m:.6f}, {r['loss']:.6f}, {d:.1e})" for a, b, d, r, m, _ in diffs[:args.steps]))
    print("all checks passed" if ok else "some checks FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
