"""Train scenes-vlm from scratch on CPU: ``python -m r3graph_scenes.model.train --out DIR --seed 0``.

Multi-task (every skill of the R3 loop, see data.py), loss on response tokens only. Two phases:
after ``--self-draft-at`` of the steps the current model captions a batch of training scenes and
those imperfect captions become drafts for judge/refine/questions/claims, so the reflect and refine
skills also see the errors this captioner actually makes.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections import defaultdict

import torch
import torch.nn.functional as F

from r3graph_scenes.metrics import aggregate, score_caption
from r3graph_scenes.model.architecture import ModelSize, build_model, build_processor, count_parameters, save_bundle
from r3graph_scenes.model.data import Example, corpus_texts, sample_examples
from r3graph_scenes.model.infer import check_matches_processor, generate, images_to_uint8, pixel_values, prompt_text
from r3graph_scenes.model.perception import ImageTokenTap, PerceptionHeads, cell_labels
from r3graph_scenes.model.tokenizer import train_tokenizer
from r3graph_scenes.world import generate_scenes, render

VALIDATION_SEED = 999  # for decisions while developing; the held-out evaluation seed is 12345


def collate(examples: list[Example], tok, images: torch.Tensor, cells: torch.Tensor) -> dict[str, torch.Tensor]:
    """Token ids, loss labels (response only), pixels and per-cell perception labels of a batch.
    Image-mode examples show their painted scene, rendered here (a millisecond each)."""
    prompts = tok([prompt_text(e.prompt) for e in examples], add_special_tokens=False).input_ids
    answers = tok([e.response for e in examples], add_special_tokens=False).input_ids
    seqs = [p + a + [tok.eos_token_id] for p, a in zip(prompts, answers, strict=True)]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), tok.pad_token_id, dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (p, s) in enumerate(zip(prompts, seqs, strict=True)):
        ids[i, : len(s)] = torch.tensor(s)
        labels[i, len(p) : len(s)] = torch.tensor(s[len(p) :])
        mask[i, : len(s)] = 1
    idx = torch.tensor([e.scene for e in examples])
    batch_images, batch_cells = images[idx].clone(), cells[idx].clone()
    for i, e in enumerate(examples):
        if e.painted is not None:
            batch_images[i] = images_to_uint8([render(e.painted)])[0]
            batch_cells[i] = cell_labels(e.painted)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "pixel_values": pixel_values(batch_images),
            "cells": batch_cells}


def length_batches(examples: list[Example], batch_size: int, rng: random.Random) -> list[list[Example]]:
    """Sort a chunk by length and cut it into batches, to waste little compute on padding."""
    ordered = sorted(examples, key=lambda e: len(e.prompt) + len(e.response))
    batches = [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
    rng.shuffle(batches)
    return batches


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def caption_eval(model, tok, scenes, images) -> dict[str, float]:
    outs = generate(model, tok, images, ["Caption the image."] * len(scenes), max_new_tokens=64)
    return aggregate([score_caption(o, s) for o, s in zip(outs, scenes, strict=True)])


def perception_warmup(model, heads: PerceptionHeads, images: torch.Tensor, cells: torch.Tensor,
                      args: argparse.Namespace, rng: random.Random) -> None:
    """Vision tower + connector only, on the dense per-cell labels: ~0.08 s a step against ~0.45 s for a
    multi-task step, so the tower learns shapes before the text model starts relying on it."""
    vision = list(model.model.vision_model.parameters()) + list(model.model.connector.parameters())
    opt = torch.optim.AdamW([*vision, *heads.parameters()], lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    t0 = time.time()
    for step in range(args.perception_warmup):
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / args.warmup)
        idx = torch.tensor(rng.sample(range(len(images)), args.batch_size))
        pixels = pixel_values(images[idx]).squeeze(1)
        tokens = model.model.connector(model.model.vision_model(pixel_values=pixels).last_hidden_state)
        loss, shape_acc = heads.loss(tokens, cells[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vision, 1.0)
        opt.step()
        if (step + 1) % 100 == 0:
            print(f"perception warm-up {step + 1}/{args.perception_warmup} {(time.time() - t0) / 60:.1f}min "
                  f"loss {loss.item():.3f} shape acc {shape_acc:.3f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="scenes/r3graph_scenes/models/scenes-vlm")
    ap.add_argument("--seed", type=int, default=0, help="seeds the training scenes, the data sampler and the init")
    ap.add_argument("--train-scenes", type=int, default=20000)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--self-draft-at", type=float, nargs="*", default=[0.5, 0.75])
    ap.add_argument("--self-draft-scenes", type=int, default=768)
    ap.add_argument("--max-minutes", type=float, default=28.0, help="stop early (and say so) past this")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--patch", type=int, default=8, choices=(4, 8),
                    help="vision patch size; the pixel-shuffle scale (2 or 4) keeps 16 image tokens")
    ap.add_argument("--perception-warmup", type=int, default=0,
                    help="steps of vision-only training on the per-cell labels before the multi-task phase")
    ap.add_argument("--aux-weight", type=float, default=0.0,
                    help="weight of the dense per-cell perception loss (perception.py); 0 turns it off")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    rng = random.Random(args.seed)

    scenes = generate_scenes(args.seed, args.train_scenes)
    images = images_to_uint8([render(s) for s in scenes])
    val_scenes = generate_scenes(VALIDATION_SEED, 150)
    val_images = images_to_uint8([render(s) for s in val_scenes])
    tok = train_tokenizer(corpus_texts(scenes[:3000], random.Random(args.seed + 1)), args.vocab)
    processor = build_processor(tok)
    check_matches_processor(processor, render(scenes[0]), "Caption the image.")
    model = build_model(tok, ModelSize(patch_size=args.patch, scale_factor=2 if args.patch == 8 else 4), seed=args.seed)
    print(f"vocab {len(tok)}, params {count_parameters(model):,}, setup {time.time() - t0:.1f}s", flush=True)

    heads = PerceptionHeads(model.get_input_embeddings().embedding_dim)
    tap = ImageTokenTap(model)
    cells = torch.stack([cell_labels(s) for s in scenes])  # (N, 3, 16)
    params = list(model.named_parameters()) + ([("aux." + n, p) for n, p in heads.named_parameters()]
                                               if args.aux_weight > 0 else [])
    if args.perception_warmup:
        perception_warmup(model, heads, images, cells, args, rng)
    decay = [p for n, p in params if p.ndim >= 2 and "embed" not in n]
    rest = [p for n, p in params if not (p.ndim >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98))
    draft_steps = {int(f * args.steps) for f in args.self_draft_at}
    model_drafts: dict[int, str] = {}
    queue: list[list[Example]] = []
    stats: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    log: list[dict[str, float]] = []
    model.train()
    step = 0
    for step in range(args.steps):
        if step in draft_steps:  # phase 2: the model's own captions become drafts
            picks = rng.sample(range(len(scenes)), args.self_draft_scenes)
            outs = generate(model, tok, images[picks], ["Caption the image."] * len(picks), max_new_tokens=64)
            model_drafts = dict(zip(picks, outs, strict=True))
            em = sum(score_caption(o, scenes[i]).exact_match for i, o in model_drafts.items()) / len(picks)
            print(f"step {step}: {len(picks)} self-drafts, train caption EM {em:.3f}", flush=True)
            queue = []
        if not queue:
            queue = length_batches(sample_examples(scenes, args.batch_size * 50, rng, model_drafts or None),
                                   args.batch_size, rng)
        batch_ex = queue.pop()
        batch = collate(batch_ex, tok, images, cells)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       pixel_values=batch["pixel_values"]).logits
        tok_loss = F.cross_entropy(logits[:, :-1].transpose(1, 2), batch["labels"][:, 1:], reduction="none")
        n_tok = (batch["labels"][:, 1:] != -100).sum(1)
        loss = tok_loss.sum() / n_tok.sum()
        if args.aux_weight > 0:
            assert tap.tokens is not None
            aux, shape_acc = heads.loss(tap.tokens, batch["cells"])
            loss = loss + args.aux_weight * aux
            stats["aux"][0] += float(aux.detach())
            stats["aux"][1] += 1
            stats["aux_shape_acc"][0] += shape_acc
            stats["aux_shape_acc"][1] += 1
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        for e, lsum, n in zip(batch_ex, tok_loss.sum(1).tolist(), n_tok.tolist(), strict=True):
            stats[e.skill][0] += lsum
            stats[e.skill][1] += n
        if (step + 1) % 50 == 0:
            per = {k: v[0] / max(v[1], 1) for k, v in sorted(stats.items())}
            elapsed = time.time() - t0
            print(f"step {step + 1}/{args.steps} {elapsed / 60:.1f}min lr {opt.param_groups[0]['lr']:.2e} "
                  + " ".join(f"{k}={v:.3f}" for k, v in per.items()), flush=True)
            log.append({"step": step + 1, "minutes": elapsed / 60, **per})
            stats.clear()
            if elapsed > args.max_minutes * 60:
                print(f"stopping early at step {step + 1}: past --max-minutes", flush=True)
                break
    tap.remove()
    minutes = (time.time() - t0) / 60
    val = caption_eval(model, tok, val_scenes, val_images)
    print(f"validation caption f1 {val['f1']:.3f} exact {val['exact_match']:.3f}; {minutes:.1f} min", flush=True)
    save_bundle(model, processor, args.out)
    with open(f"{args.out}/training_log.json", "w") as f:
        json.dump({"args": vars(args), "steps_done": step + 1, "train_minutes": minutes,
                   "validation_seed": VALIDATION_SEED, "validation_caption": val, "log": log}, f, indent=1)
    print(f"saved to {args.out}; total {(time.time() - t0) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
