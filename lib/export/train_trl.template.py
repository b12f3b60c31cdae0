from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import SFTConfig, SFTTrainer

HERE = os.path.dirname(os.path.abspath(__file__))

# @SETTINGS@


def project_lr(step: int) -> float:
    """The project's lr at optimizer step `step` (1-based; lib/train/schedule.ts learningRate): the
    course's cosine_with_warmup at s = step - 1, linear warmup LR*(s+1)/WARMUP while s < WARMUP,
    then cosine to MIN_LR_RATIO x LR with progress (s - WARMUP)/(STEPS - WARMUP)."""
    s = step - 1
    if s < WARMUP:
        return LR * (s + 1) / WARMUP
    progress = min(1.0, max(0.0, (s - WARMUP) / max(1, STEPS - WARMUP)))
    min_lr = LR * MIN_LR_RATIO
    return min_lr + 0.5 * (LR - min_lr) * (1 + math.cos(math.pi * progress))


def read_jsonl(path: str) -> list:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class ProjectBatches(torch.utils.data.Sampler):
    """The project's batches, step by step (BATCHES_FILE: indices into TRAIN_FILE, drawn by the
    project's own iterateBatches from SEED), each split over the ranks. A rank whose share of a
    short batch is empty gets the batch's first row with every label -100 (its key is negative):
    it joins the collective step and adds nothing to the loss or to the supervised-token count."""

    def __init__(self, batches: list, rank: int, world: int):
        self.batches, self.rank, self.world = batches, rank, world

    def __iter__(self):
        for batch in self.batches:
            share = batch[self.rank :: self.world]
            yield share if share else [-1 - batch[0]]

    def __len__(self):
        return len(self.batches)


class Rows(torch.utils.data.Dataset):
    """TRL's tokenized rows (input_ids, labels); key -1-i is row i with no supervised label."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, key: int) -> dict:
        row = self.ds[key if key >= 0 else -1 - key]
        labels = row["labels"] if key >= 0 else [-100] * len(row["input_ids"])
        return {"input_ids": row["input_ids"], "labels": labels}


class ProjectSFTTrainer(SFTTrainer):
    """SFTTrainer with the project's lr schedule, decay set, batch order and per-step record."""

    def __init__(self, *a, batches: list, metrics_path: str, **kw):
        self._batches, self._metrics_path = batches, metrics_path
        super().__init__(*a, **kw)

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        # HF steps the scheduler after each optimizer step, so step k (1-based) runs at lambda(k - 1).
        if self.lr_scheduler is None:
            opt = optimizer if optimizer is not None else self.optimizer
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: project_lr(s + 1) / LR)
            self._created_lr_scheduler = True
        return self.lr_scheduler

    def get_decay_parameter_names(self, model) -> list:
        # The project decays matrices only (lib/train/step.ts: ndim >= 2), never norms or biases.
        return [n for n, p in model.named_parameters() if p.ndim >= 2]

    def get_train_dataloader(self):
        # Not prepared by Accelerate: ProjectBatches already gives each rank its share of the
        # project's batch, and the Trainer moves each batch to the device itself.
        sampler = ProjectBatches(self._batches, self.args.process_index, self.args.world_size)
        return torch.utils.data.DataLoader(Rows(self.train_dataset), batch_sampler=sampler, collate_fn=self.data_collator, num_workers=0)

    def training_step(self, model, inputs, num_items_in_batch=None):
        lr = self.optimizer.param_groups[0]["lr"]  # the lr this step's update uses
        ntoks = (inputs["labels"][:, 1:] != -100).sum()
        loss = super().training_step(model, inputs, num_items_in_batch)
        # Each rank returns its supervised sum over the global count, times the world size
        # (average_tokens_across_devices): the mean over ranks is the batch's loss, as the project's.
        both = self.accelerator.gather(torch.stack([loss.detach().float(), ntoks.float()]).reshape(1, 2))
        if self.is_world_process_zero():
            record = {"type": "train", "step": self.state.global_step + 1, "loss": both[:, 0].mean().item(), "lr": lr, "ntoks": int(both[:, 1].sum().item())}
            with open(self._metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        return loss


class ProjectEvaluation(TrainerCallback):
    """The project's held-out evaluation (lib/train/trainer.ts): at step 0, every EVAL_EVERY steps
    and at the last step; cross-entropy summed over every supervised target of the eval set and
    divided once by their count (never a mean of batch means); the best by more than MIN_DELTA is
    kept when KEEP is "best"; PATIENCE evaluations without such an improvement stop the run."""

    def __init__(self, rows: list, out_dir: str, stop_after: int | None):
        self.rows, self.out_dir, self.stop_after = rows, out_dir, stop_after
        self.trainer = None  # set once the trainer exists
        self.best, self.since_best, self.best_step = math.inf, 0, -1

    @torch.no_grad()
    def heldout_loss(self) -> tuple:
        t = self.trainer
        model, device = t.model_wrapped, t.args.device
        order = sorted(range(len(self.rows)), key=lambda i: len(self.rows[i]["input_ids"]))
        chunks = [order[s : s + BATCH] for s in range(0, len(order), BATCH)]
        total = torch.zeros(2, dtype=torch.float64, device=device)  # [loss sum, targets]
        was_training = model.training
        model.eval()
        for chunk in chunks[t.args.process_index :: t.args.world_size]:
            rows = [self.rows[i] for i in chunk]
            T = max(len(r["input_ids"]) for r in rows)
            ids = torch.full((len(rows), T), t.processing_class.pad_token_id, dtype=torch.long)
            labels = torch.full((len(rows), T), -100, dtype=torch.long)
            attention = torch.zeros((len(rows), T), dtype=torch.long)
            for j, r in enumerate(rows):
                n = len(r["input_ids"])
                ids[j, :n] = torch.tensor(r["input_ids"])
                labels[j, :n] = torch.tensor([x if m else -100 for x, m in zip(r["input_ids"], r["assistant_masks"])])
                attention[j, :n] = 1
            logits = model(input_ids=ids.to(device), attention_mask=attention.to(device)).logits.float()  # [B, T, V]
            targets = labels[:, 1:].to(device)  # the one shift: position t predicts id t + 1
            ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum")
            total += torch.stack([ce.double(), (targets != -100).sum().double()])
        if was_training:
            model.train()
        total = t.accelerator.reduce(total, "sum")
        return total[0].item() / total[1].item(), int(total[1].item())

    def evaluate(self, state, control):
        loss, ntoks = self.heldout_loss()
        is_best = loss < self.best - MIN_DELTA
        if is_best:
            self.best, self.best_step, self.since_best = loss, state.global_step, 0
            if KEEP == "best":
                self.trainer.save_model(os.path.join(self.out_dir, "best"))
        else:
            self.since_best += 1
        if self.trainer.is_world_process_zero():
            with open(os.path.join(self.out_dir, "metrics.jsonl"), "a") as f:
                f.write(json.dumps({"type": "eval", "step": state.global_step, "evalLoss": loss, "ntoks": ntoks, "best": is_best}) + "\n")
            print(f"step {state.global_step:05d} | held-out loss {loss:.4f} over {ntoks} tokens{' (best)' if is_best else ''}", flush=True)
        if PATIENCE > 0 and self.since_best >= PATIENCE:
            control.should_training_stop = True

    def on_train_begin(self, args, state, control, **kw):
        if self.rows and state.global_step == 0:
            self.evaluate(state, control)

    def on_step_end(self, args, state, control, **kw):
        if self.stop_after is not None and state.global_step >= self.stop_after:
            control.should_training_stop = True
        if self.rows and (state.global_step % EVAL_EVERY == 0 or state.global_step == STEPS):
            self.evaluate(state, control)
        return control


def barrier():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def adapted(model, tokenizer):
    """With PEFT_CONFIG (the run trains a LoRA adapter): the run's adapter at step 0 from
    START_ADAPTER, trainable, checked against PEFT_CONFIG. Loaded rather than made by
    LoraConfig(**PEFT_CONFIG), which would draw another random A: from the same A the steps are the run's."""
    if not PEFT_CONFIG:
        return model
    from peft import PeftModel

    path = os.path.join(HERE, START_ADAPTER)
    peft_model = PeftModel.from_pretrained(model, path, is_trainable=True)
    c = peft_model.peft_config["default"]
    want = dict(PEFT_CONFIG)
    tokens = want.pop("trainable_tokens", None) or []
    targets = want.pop("target_modules")
    got = {"r": c.r, "lora_alpha": c.lora_alpha, "lora_dropout": c.lora_dropout}
    ids = tokenizer.convert_tokens_to_ids(tokens)
    found = sorted(set((c.trainable_token_indices or {}).get("embed_tokens", [])))
    if any(got[k] != want[k] for k in got) or sorted(set(c.target_modules)) != sorted(set(targets if targets != "all-linear" else c.target_modules)) or found != sorted(ids):
        sys.exit(f"{path} does not hold the adapter PEFT_CONFIG describes ({got}, {sorted(c.target_modules)}, token ids {found}; "
                 f"PEFT_CONFIG {PEFT_CONFIG}, ids {ids}): re-export the job")
    return peft_model


def build(out_dir: str, stop_after: int | None = None, cpu: bool = False) -> ProjectSFTTrainer:
    """The trainer for this export's job, writing into `out_dir` (which must not exist yet)."""
    if os.path.exists(out_dir):
        sys.exit(f"{out_dir} already exists: outputs are never overwritten; pass --output <new folder>")
    config = SFTConfig(
        output_dir=os.path.join(out_dir, "hf"),
        run_name=RUN_NAME,
        max_steps=STEPS,  # steps, not epochs: the project counts optimizer steps
        per_device_train_batch_size=math.ceil(BATCH / int(os.environ.get("WORLD_SIZE", "1"))),  # ProjectBatches decides the real rows
        gradient_accumulation_steps=1,
        learning_rate=LR,  # peak; the LambdaLR above gives every step the project's lr
        lr_scheduler_type="constant",  # replaced by create_scheduler; no HF warmup either
        optim="adamw_torch",  # AdamW with bias correction, decoupled decay: lib/train/step.ts's update
        adam_beta1=ADAM_BETA1,
        adam_beta2=ADAM_BETA2,
        adam_epsilon=ADAM_EPS,
        weight_decay=WEIGHT_DECAY,
        max_grad_norm=GRAD_CLIP,  # global norm, clip_coef = max / (norm + 1e-6) as the project; 0 = off
        seed=SEED,
        data_seed=SEED,
        bf16=False,  # TRL defaults to bf16; the project trains in fp32, and bf16 changes every loss
        fp16=False,
        tf32=False,  # TF32 matmuls on Ampere+ round inputs to 10 bits: not fp32
        gradient_checkpointing=GRAD_CHECKPOINT,  # TRL's default is on: same math, recomputed; the run's setting
        packing=False,  # one conversation per row, as the project
        padding_free=False,
        pad_to_multiple_of=PAD_MULTIPLE,  # padding never changes the loss; repeats shapes
        max_length=None,  # never truncate: rows longer than MAX_SEQ_LEN + 1 ids are refused below
        assistant_only_loss=ASSISTANT_ONLY_LOSS,  # the template's {% generation %} span, every turn
        completion_only_loss=None,
        average_tokens_across_devices=True,  # loss = supervised sum / supervised count of the whole batch
        # The same cross-entropy either way; TRL 1.13's default "chunked_nll" reads the head's weight
        # directly, past PEFT's trainable token rows on a (tied) head: "nll" runs the adapted head.
        **({"loss_type": "nll"} if PEFT_CONFIG else {}),
        eval_strategy="no",  # ProjectEvaluation evaluates the project's way
        save_strategy="no",  # the final (or best) weights are saved once, below
        logging_steps=LOG_EVERY,
        report_to="none",
        dataloader_num_workers=0,
        disable_tqdm=True,
        use_cpu=cpu,  # the CPU even where GPUs are; with several processes: gloo
    )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != config.world_size:
        sys.exit(f"started as {launched} processes, but transformers runs {config.world_size}: on a machine without GPUs pass --cpu")
    # Every rank has looked for the folder before the first one creates it.
    barrier()
    if config.process_index == 0:
        os.makedirs(out_dir)
    barrier()
    start = os.path.join(HERE, START)
    tokenizer = AutoTokenizer.from_pretrained(start)
    # The checkpoint's template marks what the project supervises with {% generation %}: TRL's
    # assistant_only_loss takes its mask from it (set here explicitly, not from TRL's defaults).
    if (tokenizer.eos_token, tokenizer.pad_token) != (EOS_TOKEN, PAD_TOKEN):
        sys.exit(f"{start}: eos/pad tokens are {tokenizer.eos_token!r}/{tokenizer.pad_token!r}, expected {EOS_TOKEN!r}/{PAD_TOKEN!r}: re-export the job")
    model = AutoModelForCausalLM.from_pretrained(start, dtype=torch.float32)  # fp32, as the project trains
    model.config.use_cache = False
    model = adapted(model, tokenizer)

    train_rows, eval_rows = read_jsonl(os.path.join(HERE, TRAIN_FILE)), read_jsonl(os.path.join(HERE, EVAL_FILE))
    batches = read_jsonl(os.path.join(HERE, BATCHES_FILE))
    if len(batches) < STEPS or any(not b or len(b) > BATCH or max(b) >= len(train_rows) or min(b) < 0 for b in batches):
        sys.exit(f"{BATCHES_FILE} does not fit {TRAIN_FILE} ({len(train_rows)} rows), STEPS {STEPS} and BATCH {BATCH} "
                 f"(drawn with SEED {SEED}, GROUP_BY_LENGTH {GROUP_BY_LENGTH}): changing data, steps or batch size needs a new "
                 "export (bun scripts/export.ts --format trl ...)")

    evaluation = ProjectEvaluation([], out_dir, stop_after)
    trainer = ProjectSFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list([{"messages": r["messages"]} for r in train_rows]),
        processing_class=tokenizer,
        callbacks=[evaluation],
        peft_config=None,  # a LoRA run's adapter is already on the model (adapted)
        batches=batches[:STEPS],
        metrics_path=os.path.join(out_dir, "metrics.jsonl"),
    )
    too_long = [i for i, r in enumerate(trainer.train_dataset) if len(r["input_ids"]) - 1 > MAX_SEQ_LEN]
    if too_long:
        sys.exit(f"{TRAIN_FILE}: rows {too_long[:10]} have more than MAX_SEQ_LEN {MAX_SEQ_LEN} targets; the project refuses them "
                 f"(DROP_OVERLENGTH was {DROP_OVERLENGTH} at export): re-export the job")
    # Held-out rows: the checkpoint's own assistant mask, whatever the training mask (the project
    # always evaluates on assistant tokens, so the "all" ablation stays comparable).
    evaluation.rows = [
        tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        for r in eval_rows
    ]
    evaluation.trainer = trainer
    return trainer


def save(trainer: ProjectSFTTrainer, out_dir: str) -> str:
    """Write the weights the project would keep (KEEP: "last" or "best") to <out_dir>/checkpoint."""
    final = os.path.join(out_dir, "checkpoint")
    best = os.path.join(out_dir, "best")
    trainer.model.config.use_cache = True
    if KEEP == "best" and os.path.isdir(best):
        if trainer.is_world_process_zero():
            shutil.move(best, final)
    else:
        trainer.save_model(final)
    if trainer.is_world_process_zero():
        trainer.processing_class.save_pretrained(final)
    return final


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Run this export's SFT job in TRL (see README.md).")
    ap.add_argument("--output", default=os.path.join(HERE, "output"), help="new folder for metrics.jsonl and checkpoint/")
    ap.add_argument("--cpu", action="store_true", help="train on the CPU (with torchrun --nproc_per_node N: N CPU processes)")
    ap.add_argument("--stop-after", type=int, default=None, help="stop after this many steps; the lr schedule still spans STEPS (parity checks)")
    args = ap.parse_args(argv)
    trainer = build(os.path.abspath(args.output), args.stop_after, args.cpu)
    trainer.train()
    final = save(trainer, os.path.abspath(args.output))
    if trainer.is_world_process_zero():
        print(f"done: {trainer.state.global_step} steps; metrics in {os.path.join(args.output, 'metrics.jsonl')}, weights in {final}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
