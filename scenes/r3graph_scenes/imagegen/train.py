"""Train scenes-imagegen from scratch on CPU.

``python -m r3graph_scenes.imagegen.train --out scenes/r3graph_scenes/models/scenes-imagegen``


Next-token cross entropy on the target tokens only (the 64 codes and <eoi>); the prompt, words or
source image, is context. Generation pairs and edit triples are mixed in every batch (edit share
``--edit-share``). Everything is seeded (data: :data:`~r3graph_scenes.imagegen.data.TRAIN_SEED`; init
and batches: ``--seed``). After training the held-out evaluation (:mod:`.evaluate`) runs and its figures
go into training_log.json and MODEL_CARD.md. The image tokenizer must already be in ``OUT/tokenizer``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import LlamaForCausalLM

from r3graph_scenes.imagegen.data import DataConfig, Encoded, encoded_dataset
from r3graph_scenes.imagegen.fsq import ImageTokenizer
from r3graph_scenes.imagegen.model import IMAGE_TOKENIZER_PATH, llama_config, save_model_dir
from r3graph_scenes.imagegen.vocab import PAD, Vocab

IGNORE = -100


def sequences(vocab: Vocab, data: Encoded) -> tuple[list[list[int]], list[int], list[list[int]], list[int]]:
    """(generation inputs, their prompt lengths, edit inputs, their prompt lengths): input = prompt + target."""
    gen, gen_p, edit, edit_p = [], [], [], []
    for text, codes in zip(data.gen_prompts, data.gen_codes, strict=True):
        prompt = vocab.generation_prompt(str(text))
        gen.append(prompt + vocab.target(codes))
        gen_p.append(len(prompt))
    for text, src, dst in zip(data.edit_instructions, data.edit_sources, data.edit_targets, strict=True):
        prompt = vocab.edit_prompt(src, str(text))
        edit.append(prompt + vocab.target(dst))
        edit_p.append(len(prompt))
    return gen, gen_p, edit, edit_p


def collate(seqs: list[list[int]], prompt_lens: list[int]) -> dict[str, torch.Tensor]:
    """Right-padded ids, mask, and labels that are IGNORE on prompts and padding."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), PAD, dtype=torch.long)
    labels = torch.full((len(seqs), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, p) in enumerate(zip(seqs, prompt_lens, strict=True)):
        ids[i, :len(s)] = torch.tensor(s)
        labels[i, p:len(s)] = torch.tensor(s[p:])
        mask[i, :len(s)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def target_loss(model: LlamaForCausalLM, batch: dict[str, torch.Tensor], bf16: bool = False) -> torch.Tensor:
    # bf16 autocast (fp32 weights and loss): about 1.4x faster a step on this AVX512-BF16 CPU.
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), batch["labels"][:, 1:].reshape(-1),
                           ignore_index=IGNORE)


def lr_at(step: int, progress: float, peak: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine to 10% of ``peak`` as ``progress`` goes to 1."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="scenes/r3graph_scenes/models/scenes-imagegen")
    ap.add_argument("--seed", type=int, default=0, help="init and batch order")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--edit-share", type=float, default=0.35)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--intermediate", type=int, default=512)
    ap.add_argument("--captions", type=int, default=DataConfig.captions)
    ap.add_argument("--mistakes", type=int, default=DataConfig.mistakes)
    ap.add_argument("--random-edits", type=int, default=DataConfig.random_edits)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--threads-later", type=int, default=None,
                    help="switch to this many torch threads once --threads-later-when exists (a core came free)")
    ap.add_argument("--threads-later-when", default=None, metavar="PATH",
                    help="file whose appearance frees more cores: r3graph_scenes.train_all writes it when the "
                         "understanding model is done")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="stop early (and say so in the card) past this many wall minutes; the learning-rate "
                         "schedule runs on --steps alone, so a run that is not stopped is the same on any machine")
    ap.add_argument("--eval-prompts", type=int, default=300)
    ap.add_argument("--eval-edits", type=int, default=300)
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--fp32", action="store_true", help="no bf16 autocast in training steps")
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def argv_given(args: argparse.Namespace) -> list[str]:
    """The command line as given, without the scheduling flags that cannot change the weights."""
    argv = list(getattr(args, "argv", None) or [])
    for flag in ("--threads", "--threads-later", "--threads-later-when"):
        while flag in argv:
            i = argv.index(flag)
            del argv[i:i + 2]
    return argv


def train(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    t0 = time.time()
    out = Path(args.out)
    image_tokenizer = ImageTokenizer.load(out / IMAGE_TOKENIZER_PATH)
    cfg = DataConfig(captions=args.captions, mistakes=args.mistakes, random_edits=args.random_edits)
    data = encoded_dataset(image_tokenizer, cfg)
    vocab = Vocab(image_tokenizer.codebook_size)
    gen, gen_p, edit, edit_p = sequences(vocab, data)
    setup = time.time() - t0
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    model = LlamaForCausalLM(llama_config(len(vocab), hidden=args.hidden, layers=args.layers,
                                          intermediate=args.intermediate))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{len(gen)} generation, {len(edit)} edit sequences; {n_params:,} params; setup {setup:.0f}s", flush=True)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98))
    n_edit = round(args.batch_size * args.edit_share)
    log: list[dict] = []
    sums = {"gen": [0.0, 0], "edit": [0.0, 0]}
    model.train()
    step = 0
    stopped_by = "steps"
    threads_changed_at: int | None = None
    for step in range(args.steps):
        # The schedule runs on steps alone: the weights then depend only on the seeds and the step count
        # (not on the machine's speed, and not on the thread count, which this CPU's kernels reduce in
        # the same order for 1 and 2 threads), so `make train` reproduces the shipped files.
        progress = step / args.steps
        if args.max_minutes is not None and time.time() - t0 > args.max_minutes * 60:
            stopped_by = "time"
            print(f"stopping early at step {step}: past --max-minutes", flush=True)
            break
        if (threads_changed_at is None and args.threads_later and args.threads_later_when
                and Path(args.threads_later_when).exists()):
            torch.set_num_threads(args.threads_later)
            threads_changed_at = step
            print(f"step {step}: {args.threads_later} threads from here on", flush=True)
        gi = rng.sample(range(len(gen)), args.batch_size - n_edit)
        ei = rng.sample(range(len(edit)), n_edit)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, progress, args.lr, args.warmup)
        losses = {}
        opt.zero_grad(set_to_none=True)
        # Two forward passes (edits are twice as long): padding generation pairs to edit length wastes half.
        for name, seqs, plen, idx in (("gen", gen, gen_p, gi), ("edit", edit, edit_p, ei)):
            if not idx:
                continue
            loss = target_loss(model, collate([seqs[i] for i in idx], [plen[i] for i in idx]), bf16=not args.fp32)
            (loss * len(idx) / args.batch_size).backward()
            losses[name] = float(loss.detach())
            sums[name][0] += losses[name]
            sums[name][1] += 1
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % 50 == 0:
            elapsed = time.time() - t0
            entry = {"step": step + 1, "minutes": round(elapsed / 60, 2), "lr": opt.param_groups[0]["lr"],
                     **{f"{k}_loss": round(v[0] / max(v[1], 1), 4) for k, v in sums.items()}}
            print(json.dumps(entry), flush=True)
            log.append(entry)
            sums = {"gen": [0.0, 0], "edit": [0.0, 0]}
    else:
        step += 1
    train_minutes = (time.time() - t0) / 60
    model.eval()
    save_model_dir(model, vocab, out)
    result = {"command": "python -m r3graph_scenes.imagegen.train " + shlex.join(argv_given(args)),
              "args": {k: v for k, v in vars(args).items() if k != "argv"},
              "data": {**cfg.__dict__, "generation_sequences": len(gen), "edit_sequences": len(edit)},
              "parameters": n_params, "steps_done": step, "stopped_by": stopped_by,
              "train_minutes": round(train_minutes, 2),
              "setup_seconds": round(setup, 1), "torch_threads": args.threads,
              "threads_later": {"threads": args.threads_later, "from_step": threads_changed_at}, "log": log}
    if not args.no_eval:
        from r3graph_scenes.imagegen.evaluate_generator import evaluate, untrained_baseline

        result["held_out"] = evaluate(model, vocab, image_tokenizer, n_prompts=args.eval_prompts,
                                      n_edits=args.eval_edits)
        result["held_out"]["untrained_baseline"] = untrained_baseline(model, vocab, image_tokenizer,
                                                                      args.eval_prompts)
    result["total_minutes"] = round((time.time() - t0) / 60, 2)
    (out / "training_log.json").write_text(json.dumps(result, indent=1) + "\n")
    if "held_out" in result:
        from r3graph_scenes.imagegen.card import write_card

        write_card(out, result)
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    np.random.seed(args.seed)
    result = train(args)
    print(f"saved to {args.out}; train {result['train_minutes']} min, total {result['total_minutes']} min", flush=True)


if __name__ == "__main__":
    main()
