# python3 scripts/hf-fixtures.py                      # rewrites test/fixtures/hf/<family>/ for every family
# python3 scripts/hf-fixtures.py --only qwen3         # one family (repeat --only for more)
# python3 scripts/hf-fixtures.py --real-shape qwen3-0.6b --out /tmp/qwen3-0.6b-shape   # ~2.4 GB, not committed
#
# Conformance fixtures from Hugging Face transformers, run by hand (never by CI): for each family a
# tiny random-init model (hidden 64, 2 layers), saved with save_pretrained(safe_serialization=True)
# in float32 next to a tiny byte-level BPE tokenizer.json, and an expected.json holding fixed input
# ids, transformers' full logits for them [T, V], and its greedy continuation. Nothing comes from the
# Hub: every model is built from a config with a seeded random init, so the script runs offline.
# test/hf-conformance.test.ts loads these folders with the project's loader; test/fixtures/hf/README.md
# says what each family covers and which config spelling it has.
#
# The committed fixtures were made with transformers 5.18.0 and torch 2.13.0+cpu (tokenizers 0.23.2),
# Python 3.11, installed in a venv from the local package store:
#   python3.11 -m venv /tmp/tv-fix && /tmp/tv-fix/bin/pip install torch transformers safetensors tokenizers
#   /tmp/tv-fix/bin/python scripts/hf-fixtures.py
import argparse
import json
import os
import shutil
import sys
import tempfile

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, GenerationConfig
from transformers.utils import logging as hf_logging

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "test", "fixtures", "hf")
PROMPT = "The quick brown fox jumps over the lazy dog by the river"  # encoded, then cut to PROMPT_IDS
PROMPT_IDS = 12  # input ids per fixture
GREEDY_NEW_TOKENS = 16  # greedy continuation length
TOKENIZER_SPARE_IDS = 40  # the tokenizer has this many ids fewer than vocab_size: ids past it are rows only
MIN_MARGIN = 1e-2  # smallest allowed top-1 minus top-2 logit at a greedy step: far above float32 noise
MIN_DISTINCT = 8  # distinct ids wanted in the greedy continuation
SEED_ATTEMPTS = 20  # seeds tried per family (seed, seed + 1000, ...) for the two conditions above

TINY = dict(  # shared by every family unless it overrides
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,  # GQA everywhere
    max_position_embeddings=128,
    rms_norm_eps=1e-6,
)

LLAMA3_ROPE = dict(
    rope_type="llama3",
    factor=8.0,
    low_freq_factor=1.0,
    high_freq_factor=4.0,
    # Small on purpose: with head_dim 16 and theta 5e5 the wavelengths are 6.3, 32.5, 168, ... positions,
    # so 64 leaves the first frequency as is (< 64/4), smooths the second (between 16 and 64) and
    # divides the rest by 8 (> 64): every branch of the llama3 rule is used.
    original_max_position_embeddings=64,
)

# name: (seed, config class name, config kwargs, legacy) — legacy rewrites config.json to the older
# top-level rope_theta / rope_scaling spelling (what transformers 4 wrote, and most Hub checkpoints have).
FAMILIES = {
    "llama": (1, "LlamaConfig", dict(vocab_size=384, tie_word_embeddings=False, rope_theta=10000.0), False),
    "llama-legacy-config": (2, "LlamaConfig", dict(vocab_size=368, tie_word_embeddings=False, rope_theta=500000.0), True),
    "llama3-rope": (3, "LlamaConfig", dict(vocab_size=320, tie_word_embeddings=True, rope_theta=500000.0,
                                           max_position_embeddings=512, rope_scaling=LLAMA3_ROPE), False),
    "llama3-rope-legacy-config": (4, "LlamaConfig", dict(vocab_size=336, tie_word_embeddings=True, rope_theta=500000.0,
                                                         max_position_embeddings=512, rope_scaling=LLAMA3_ROPE), True),
    "mistral": (5, "MistralConfig", dict(vocab_size=352, tie_word_embeddings=False, rope_theta=10000.0, sliding_window=None), False),
    "qwen2": (6, "Qwen2Config", dict(vocab_size=400, tie_word_embeddings=True, rope_theta=1000000.0), False),
    "qwen2-legacy-config": (7, "Qwen2Config", dict(vocab_size=392, tie_word_embeddings=True, rope_theta=1000000.0), True),
    # head_dim 32 with hidden 64 and 4 heads: q_proj is [128, 64], not square
    "qwen3": (8, "Qwen3Config", dict(vocab_size=448, tie_word_embeddings=True, rope_theta=1000000.0, head_dim=32), False),
    "qwen3-untied": (9, "Qwen3Config", dict(vocab_size=432, tie_word_embeddings=False, rope_theta=1000000.0, head_dim=32), False),
}

# Qwen/Qwen3-0.6B-Base's config.json, shapes and all; weights random, float32 (the real one is bfloat16).
QWEN3_06B = dict(
    vocab_size=151936,
    hidden_size=1024,
    intermediate_size=3072,
    num_hidden_layers=28,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=128,
    max_position_embeddings=32768,
    max_window_layers=28,
    rms_norm_eps=1e-6,
    rope_theta=1000000.0,
    tie_word_embeddings=True,
    bos_token_id=151643,
    eos_token_id=151643,
    attention_bias=False,
    use_sliding_window=False,
    sliding_window=None,
)
QWEN3_SPECIAL = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}  # Qwen3's ids

CORPUS = """The quick brown fox jumps over the lazy dog by the river.
Once upon a time there was a little cat who liked to sit on the warm mat in the sun.
She saw a big red ball under the old tree and ran to get it, but the dog got there first.
The river was cold and clear, and the fish in it were small and quick.
In the morning the baker made bread, and the children came to buy it on their way to school.
Numbers like 1, 2, 3 and 42 appear now and then; so do words such as jumping, running, sitting.
A model that reads text one token at a time predicts the next token from the ones before it.
"""


def train_tokenizer(vocab_size, specials=("<|endoftext|>",)):
    """A byte-level BPE (GPT-2 style) trained on CORPUS with `vocab_size` ids, specials first."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(specials),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS.splitlines(), trainer)
    return tok


def randomize(model, seed):
    """Weights that make every part of the model matter: projections and embeddings with a std large
    enough that logits spread over several units and attention is far from uniform, RMSNorm weights
    around 1 but not 1 (a missing or misplaced norm changes the logits), biases non-zero."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):  # input/post-attention/final norms, qwen3's q_norm/k_norm
                p.copy_(1 + 0.3 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn_like(p))
            elif "embed_tokens" in name or name == "lm_head.weight":
                p.copy_(0.5 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))


def to_legacy_spelling(config_path):
    """Rewrite rope_parameters as top-level rope_theta (+ rope_scaling, null for plain RoPE)."""
    with open(config_path) as f:
        cfg = json.load(f)
    rope = dict(cfg.pop("rope_parameters"))
    cfg["rope_theta"] = rope.pop("rope_theta")
    cfg["rope_scaling"] = None if rope.get("rope_type") == "default" else rope
    with open(config_path, "w") as f:
        json.dump(dict(sorted(cfg.items())), f, indent=2)
        f.write("\n")


def greedy(model, ids, n):
    """transformers' own greedy generate, checked against a plain argmax loop (no eos, no min length:
    both would mask logits, and then the ids would not be the argmax). Returns the ids and the smallest
    top-1 minus top-2 margin over the steps."""
    gen = GenerationConfig(max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=None,
                           bos_token_id=None, temperature=None, top_p=None, top_k=None)
    out = model.generate(torch.tensor([ids]), generation_config=gen)[0, len(ids):].tolist()
    seq, margin = list(ids), float("inf")
    for _ in range(n):
        top2 = model(torch.tensor([seq])).logits[0, -1].topk(2)
        margin = min(margin, float(top2.values[0] - top2.values[1]))
        seq.append(int(top2.indices[0]))
    if seq[len(ids):] != out:
        sys.exit(f"generate() {out} differs from the argmax loop {seq[len(ids):]}")
    return out, margin


def build(name, seed, out_dir):
    """Write one fixture folder with weights from `seed`; returns what expected.json needs."""
    _, config_class, kwargs, legacy = FAMILIES[name]
    config = getattr(transformers, config_class)(**TINY | kwargs)
    tok = train_tokenizer(config.vocab_size - TOKENIZER_SPARE_IDS)
    config.bos_token_id, config.eos_token_id, config.pad_token_id = None, tok.token_to_id("<|endoftext|>"), None
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    randomize(model, seed)
    if config.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "head not tied"

    shutil.rmtree(out_dir, ignore_errors=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    if legacy:
        to_legacy_spelling(os.path.join(out_dir, "config.json"))

    # Expected values come from the folder as transformers reads it back, so they prove that the
    # written config (either spelling) means the same model.
    reloaded = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32).eval()
    if reloaded.config.rope_parameters != model.config.rope_parameters:
        sys.exit(f"{name}: config.json reads back as {reloaded.config.rope_parameters}, not {model.config.rope_parameters}")
    ids = tok.encode(PROMPT).ids[:PROMPT_IDS]
    prompt_text = tok.decode(ids)
    assert tok.encode(prompt_text).ids == ids, f"{prompt_text!r} does not encode back to {ids}"
    with torch.no_grad():
        logits = reloaded(torch.tensor([ids])).logits[0]  # [T, V]
        same = (logits - model(torch.tensor([ids])).logits[0]).abs().max().item()
        assert same == 0, f"{name}: reloaded model differs from the saved one by {same}"
        new_ids, margin = greedy(reloaded, ids, GREEDY_NEW_TOKENS)
    return dict(seed=seed, prompt_text=prompt_text, input_ids=ids, logits=logits, greedy_ids=new_ids,
                greedy_text=tok.decode(new_ids, skip_special_tokens=True), margin=margin, vocab_size=config.vocab_size)


def write_fixture(name, out_dir):
    # Random models often fall into repeating one id; a few seeds are tried for a continuation that
    # varies (a stronger check of positions past the prompt) with clear argmax margins.
    for attempt in range(SEED_ATTEMPTS):
        got = build(name, FAMILIES[name][0] + 1000 * attempt, out_dir)
        if got["margin"] >= MIN_MARGIN and len(set(got["greedy_ids"])) >= MIN_DISTINCT:
            break
    else:
        sys.exit(f"{name}: no seed in {SEED_ATTEMPTS} gave margins >= {MIN_MARGIN} and {MIN_DISTINCT} distinct greedy ids")
    with open(os.path.join(out_dir, "config.json")) as f:
        spelling = "rope_parameters" if "rope_parameters" in json.load(f) else "rope_theta/rope_scaling"
    expected = {
        "family": name,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "config_spelling": spelling,
        "seed": got["seed"],
        "prompt_text": got["prompt_text"],
        "input_ids": got["input_ids"],
        "logits": [[float(f"{x:.9g}") for x in row] for row in got["logits"].tolist()],  # 9 digits: exact float32
        "greedy_new_tokens": GREEDY_NEW_TOKENS,
        "greedy_ids": got["greedy_ids"],  # new ids only, after input_ids
        "greedy_text": got["greedy_text"],
        "min_greedy_margin": round(got["margin"], 4),
    }
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump(expected, f, separators=(",", ":"))
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(f"{name:27s} {spelling:23s} vocab {got['vocab_size']} | seed {got['seed']} | logit std {got['logits'].std():.2f} | "
          f"greedy margin >= {got['margin']:.3f}, {len(set(got['greedy_ids']))} distinct ids | {size / 1024:.0f} KB")


def qwen3_shape_tokenizer():
    """A byte-level BPE with Qwen3's id layout: ordinary tokens 0..151642 (trained merges, then filler
    entries so every id decodes), then <|endoftext|>, <|im_start|>, <|im_end|> at Qwen3's ids. No
    <|user|>, <|assistant|>, <|end|> or <|pad|>: the project has to add its chat tokens."""
    data = json.loads(train_tokenizer(1024, specials=()).to_str())
    vocab = data["model"]["vocab"]
    first_special = min(QWEN3_SPECIAL.values())
    for i in range(len(vocab), first_special):
        vocab[f"tok{i}"] = i  # reachable by no merge, but decodable: "tok123456"
    data["added_tokens"] = [
        dict(id=i, content=t, single_word=False, lstrip=False, rstrip=False, normalized=False, special=True)
        for t, i in QWEN3_SPECIAL.items()
    ]
    return Tokenizer.from_str(json.dumps(data))


def write_qwen3_shape(out_dir):
    if os.path.exists(out_dir):
        sys.exit(f"{out_dir} exists: pick a new --out (it is never overwritten)")
    config = transformers.Qwen3Config(**QWEN3_06B)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()  # transformers' own init (std 0.02)
    tmp = tempfile.mkdtemp(prefix=".qwen3-shape-", dir=os.path.dirname(os.path.abspath(out_dir)))
    model.save_pretrained(tmp, safe_serialization=True)
    tok = qwen3_shape_tokenizer()
    tok.save(os.path.join(tmp, "tokenizer.json"))
    ids = tok.encode(PROMPT).ids[:PROMPT_IDS]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    with open(os.path.join(tmp, "expected.json"), "w") as f:  # the last position only: [V] is 151936 floats
        json.dump({"family": "qwen3-0.6b-shape", "transformers_version": transformers.__version__,
                   "torch_version": torch.__version__, "input_ids": ids,
                   "last_logits": [float(f"{x:.9g}") for x in logits[-1].tolist()]}, f)
    os.rename(tmp, out_dir)
    os.chmod(out_dir, 0o755)  # mkdtemp made it private
    size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    n = sum(p.numel() for p in model.parameters())
    print(f"qwen3-0.6b shape: {n:,} parameters, {size / 2**30:.2f} GiB in {out_dir}")


def main():
    ap = argparse.ArgumentParser(description="Write conformance fixtures from Hugging Face transformers.")
    ap.add_argument("--only", action="append", choices=sorted(FAMILIES), help="write only this family")
    ap.add_argument("--out", help="output directory (default: test/fixtures/hf/<family>)")
    ap.add_argument("--real-shape", choices=["qwen3-0.6b"], help="write one full-size random checkpoint to --out")
    args = ap.parse_args()
    hf_logging.disable_progress_bar()
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    if args.real_shape:
        if not args.out:
            sys.exit("--real-shape needs --out DIR (about 2.4 GB; never committed)")
        write_qwen3_shape(args.out)
        return
    names = args.only or list(FAMILIES)
    if args.out and len(names) != 1:
        sys.exit("--out names one folder: use it with exactly one --only")
    for name in names:
        write_fixture(name, args.out or os.path.join(FIXTURES, name))


if __name__ == "__main__":
    main()
