"""Train one model of the generator's shape on understanding (U), generation+edit (G) or both (U+G).

``python -m r3graph_scenes.imagegen.unified_train --mode ug --steps 800 --out .cache/unified/ug``

The three modes share everything but the batch's content: architecture (4 layers, hidden 256, MLP
512, as scenes-imagegen), the :class:`.unified_data.UnifiedVocab` (so all three have the same
embedding size), step count, batch size (sequences per step), learning-rate schedule, init seed and
images. G is the shipped recipe (edit share 0.35 of its sequences); U splits its sequences among
caption / vqa / judge; U+G gives half of each batch to each side. Loss on target tokens only, the
helpers of :mod:`.train` (``sequences``, ``collate``, ``target_loss``, ``lr_at``) doing the work.
The schedule ends by steps only (never by wall time), so the three budgets are equal.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
from transformers import LlamaForCausalLM

from r3graph_scenes.imagegen.data import DataConfig, encoded_dataset
from r3graph_scenes.imagegen.fsq import SHIPPED_DIR, ImageTokenizer
from r3graph_scenes.imagegen.model import llama_config
from r3graph_scenes.imagegen.train import collate, lr_at, sequences, target_loss
from r3graph_scenes.imagegen.unified_data import TASKS, UnifiedVocab, und_sequence, understanding_data

MODES = ("u", "g", "ug")
UND_SHARES = {"caption": 0.3, "judge": 0.25}  # vqa takes the rest of the understanding sequences
EDIT_SHARE = 0.35  # of the generation side's sequences, as the shipped model


def batch_plan(mode: str, batch_size: int) -> dict[str, int]:
    """Sequences per step of each kind: caption, vqa, judge, gen, edit (they sum to ``batch_size``)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    n_und = {"u": batch_size, "g": 0, "ug": batch_size // 2}[mode]
    n_gen_side = batch_size - n_und
    plan = {"caption": round(n_und * UND_SHARES["caption"]), "judge": round(n_und * UND_SHARES["judge"])}
    plan["vqa"] = n_und - plan["caption"] - plan["judge"]
    plan["edit"] = round(n_gen_side * EDIT_SHARE)
    plan["gen"] = n_gen_side - plan["edit"]
    return plan


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mode", choices=MODES, required=True)
    ap.add_argument("--out", required=True, help="model directory (keep it under .cache/: not shipped)")
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0, help="init and batch order")
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--image-tokenizer", default=str(SHIPPED_DIR))
    return ap.parse_args(argv)


def train(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    t0 = time.time()
    out = Path(args.out)
    image_tokenizer = ImageTokenizer.load(args.image_tokenizer)
    cfg = DataConfig()
    data = encoded_dataset(image_tokenizer, cfg)
    vocab = UnifiedVocab(image_tokenizer.codebook_size)
    gen, gen_p, edit, edit_p = sequences(vocab, data)
    und = understanding_data(data, cfg)
    und_seqs = {t: [und_sequence(vocab, und.codes, it) for it in und.items[t]] for t in TASKS}
    setup = time.time() - t0
    plan = batch_plan(args.mode, args.batch_size)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    model = LlamaForCausalLM(llama_config(len(vocab), hidden=256, layers=4, intermediate=512))
    n_params = sum(p.numel() for p in model.parameters())
    sizes = {"gen": len(gen), "edit": len(edit), **{t: len(v) for t, v in und_seqs.items()}}
    print(f"mode {args.mode}: plan {plan}; data {sizes}; {n_params:,} params; setup {setup:.0f}s", flush=True)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98))
    log: list[dict] = []
    sums: dict[str, list[float]] = {k: [0.0, 0] for k in ("und", "gen", "edit")}
    model.train()
    t_train = time.time()
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, step / args.steps, args.lr, args.warmup)
        # Understanding sequences are all about the same length (64 codes + ~30 words): one padded pass.
        picked = [und_seqs[t][i] for t in TASKS for i in rng.sample(range(len(und_seqs[t])), plan[t])]
        groups = [("und", [s for s, _ in picked], [p for _, p in picked])]
        for name, seqs, plen in (("gen", gen, gen_p), ("edit", edit, edit_p)):
            idx = rng.sample(range(len(seqs)), plan[name])
            groups.append((name, [seqs[i] for i in idx], [plen[i] for i in idx]))
        opt.zero_grad(set_to_none=True)
        for name, seqs_, plens in groups:
            if not seqs_:
                continue
            loss = target_loss(model, collate(seqs_, plens), bf16=True)
            (loss * len(seqs_) / args.batch_size).backward()
            sums[name][0] += float(loss.detach())
            sums[name][1] += 1
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % 25 == 0:
            entry = {"step": step + 1, "minutes": round((time.time() - t0) / 60, 2),
                     "s_per_step": round((time.time() - t_train) / (step + 1), 3), "lr": opt.param_groups[0]["lr"],
                     **{f"{k}_loss": round(v[0] / v[1], 4) for k, v in sums.items() if v[1]}}
            print(json.dumps(entry), flush=True)
            log.append(entry)
            sums = {k: [0.0, 0] for k in sums}
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    result = {"command": "python -m r3graph_scenes.imagegen.unified_train " + " ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "image_tokenizer"),
              "args": vars(args), "plan": plan, "data": sizes, "parameters": n_params, "steps_done": args.steps,
              "setup_seconds": round(setup, 1), "train_minutes": round((time.time() - t_train) / 60, 2),
              "log": log}
    (out / "training_log.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(argv: list[str] | None = None) -> None:
    result = train(parse_args(argv))
    print(f"done: {result['steps_done']} steps, {result['train_minutes']} min", flush=True)


if __name__ == "__main__":
    main()
