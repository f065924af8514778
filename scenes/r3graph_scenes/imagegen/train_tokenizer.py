"""Train the scene-world image tokenizer from scratch on one CPU thread:

    python -m r3graph_scenes.imagegen.train_tokenizer --out scenes/r3graph_scenes/models/scenes-imagegen/tokenizer

Training images are freshly generated scenes (``--seed``); development checks during training use
scenes of DEV_SEED, and the held-out figures in the model card come from HELD_OUT_SEED, a seed neither
training nor development decisions looked at (it is the detector's own validation seed, so the
detector's figure on those renders is the one bench/results/detector.md reports).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from r3graph_scenes.detector import VALIDATION_SEED, compare_scenes, detect
from r3graph_scenes.imagegen.evaluate import ASPECTS, detector_summary, evaluate_tokenizer
from r3graph_scenes.imagegen.fsq import (
    TRAIN_COMMAND,
    ImageTokenizer,
    PaletteHead,
    TokenizerConfig,
    TokenizerNet,
    to_images,
)
from r3graph_scenes.world import BACKGROUND, generate_scenes, render

DEV_SEED = 999  # scenes for decisions while developing (architecture, loss, steps)
HELD_OUT_SEED = VALIDATION_SEED  # 31337: the model card's figures; never used for a decision


def images_to_tensor(scenes: list, size: int) -> torch.Tensor:
    """Renders as a uint8 (n, 3, size, size) tensor: 12 KB a scene, so 40k scenes fit in 0.5 GB."""
    return torch.from_numpy(np.stack([np.asarray(render(s, size), dtype=np.uint8) for s in scenes])).permute(0, 3, 1, 2)


def pixel_weights(target: torch.Tensor, object_weight: float) -> torch.Tensor:
    """1 on background, ``1 + object_weight`` on object pixels and the pixel ring around them: the
    objects are what the detector reads, and most of an image is plain background."""
    bg = torch.tensor(BACKGROUND, dtype=torch.float32).view(1, 3, 1, 1) / 127.5 - 1
    on = ((target - bg).abs().amax(1, keepdim=True) > 2 / 127.5).float()
    return 1 + object_weight * F.max_pool2d(on, 3, stride=1, padding=1)


def lr_at(progress: float, step: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine from ``peak`` to 5% of it as ``progress`` goes from 0 to 1."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def dev_exact(tokenizer: ImageTokenizer, scenes: list, images: torch.Tensor) -> float:
    tokenizer.net.eval()
    with torch.inference_mode():
        recon = to_images(tokenizer.net(images.float() / 127.5 - 1))
    tokenizer.net.train()
    return detector_summary([compare_scenes(detect(r), s) for r, s in zip(recon, scenes, strict=True)])["exact"]


def train(args: argparse.Namespace) -> tuple[ImageTokenizer, dict[str, Any]]:
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    t0 = time.time()
    config = TokenizerConfig(levels=tuple(args.levels), width=args.width, latent_width=args.latent_width,
                             blocks=args.blocks, fine_width=args.fine_width, output=args.output)
    images = images_to_tensor(generate_scenes(args.seed, args.train_scenes), config.image_size)
    dev_scenes = generate_scenes(DEV_SEED, args.dev_scenes)
    dev_images = images_to_tensor(dev_scenes, config.image_size)
    # channels-last and bfloat16 autocast: about 1.5x the steps per minute on one thread of a CPU with
    # AVX-512 BF16 (measured on this 2-core EPYC, while shared); weights and losses stay float32.
    net = TokenizerNet(config).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    tokenizer = ImageTokenizer(net=net, config=config)
    net.train()
    n_params = sum(p.numel() for p in net.parameters())
    print(f"{len(images)} training scenes, {n_params:,} parameters, setup {time.time() - t0:.1f}s", flush=True)
    decay = [p for p in net.parameters() if p.ndim >= 2]
    rest = [p for p in net.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 1e-4}, {"params": rest, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.99))
    log: list[dict[str, float]] = []
    running = {"loss": 0.0, "l1": 0.0, "mse": 0.0, "colour_ce": 0.0}
    done = 0
    cpu_start = time.process_time()
    stopped_early = False
    for step in range(args.steps):
        # The schedule runs on steps alone, so the weights depend only on the seed and --steps, never
        # on how fast (or how shared) the machine is: `make train` reproduces the shipped tokenizer, and
        # the generator trained on its codes with it. --max-minutes only stops a run (and says so).
        progress = step / args.steps
        if args.max_minutes is not None and time.process_time() - cpu_start > 60 * args.max_minutes:
            print(f"stopping early at step {step}: --max-minutes of CPU time spent", flush=True)
            stopped_early = True
            break
        idx = torch.tensor(rng.sample(range(len(images)), args.batch_size))
        x = images[idx].float() / 127.5 - 1
        flip = torch.rand(len(x)) < 0.5  # mirrored scenes are scenes: the shapes are left-right symmetric
        x[flip] = x[flip].flip(-1)
        x = x.contiguous(memory_format=torch.channels_last)
        for g in opt.param_groups:
            g["lr"] = lr_at(progress, step, args.lr, args.warmup)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            hidden = net.decoder[:-1](net.quantize(x)).float()
        out = net.decoder[-1](hidden)
        w = pixel_weights(x, args.object_weight)
        l1 = (w * (out - x).abs()).mean()
        mse = (w * (out - x) ** 2).mean()
        loss = l1 + args.mse_weight * mse
        if isinstance(net.decoder[-1], PaletteHead) and args.colour_weight > 0:
            # Cross-entropy on which palette colour each object pixel holds: the pixel loss alone lets
            # an unsure decoder blend two colours into a third, which the detector reads as another object.
            index, mask = net.decoder[-1].colour_targets(x)
            ce = F.cross_entropy(hidden[:, :-1], index, reduction="none")
            colour = (ce * mask).sum() / mask.sum().clamp(min=1)
            loss = loss + args.colour_weight * colour
            running["colour_ce"] += colour.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        running["loss"] += loss.item()
        running["l1"] += l1.item()
        running["mse"] += mse.item()
        done = step + 1
        if (step + 1) % args.log_every == 0:
            elapsed = time.time() - t0
            entry = {"step": step + 1, "minutes": elapsed / 60, "lr": opt.param_groups[0]["lr"],
                     **{k: v / args.log_every for k, v in running.items()}}
            if (step + 1) % args.dev_every == 0 or step + 1 == args.steps:
                entry["dev_exact"] = dev_exact(tokenizer, dev_scenes, dev_images)
            print(" ".join(f"{k} {v:.4g}" for k, v in entry.items()), flush=True)
            log.append(entry)
            running = dict.fromkeys(running, 0.0)
    net.eval()
    train_minutes = (time.time() - t0) / 60
    return tokenizer, {"steps_done": done, "stopped_early": stopped_early, "train_minutes": train_minutes,
                       "train_cpu_minutes": (time.process_time() - cpu_start) / 60, "parameters": n_params, "log": log}


def model_card(args: argparse.Namespace, info: dict[str, Any], held: dict[str, Any], dev: dict[str, Any]) -> str:
    rec, ren = held["reconstructions"], held["renders"]

    def row(name: str, r: dict[str, Any]) -> str:
        return (f"| {name} | {r['exact_count']}/{r['n']} | {r['exact']:.3f} | {r['lower_bound_95']:.3f} | "
                + " | ".join(f"{r[a]:.3f}" for a in ASPECTS) + f" | {r['max_position_error']:.3f} |")

    return "\n".join([
        "# scenes-imagegen tokenizer", "",
        "A discrete image tokenizer for the scene world: 64x64 RGB -> conv encoder -> FSQ "
        f"(levels {list(args.levels)}, {held['codebook_size']} codes) on an 8x8 grid -> conv decoder. "
        "64 tokens per image, row-major. Code: `scenes/r3graph_scenes/imagegen/fsq.py`.", "",
        "## Training", "",
        f"- Command: `{info['command']}`",
        f"- From scratch, {info['steps_done']} steps of batch {args.batch_size} on {args.train_scenes} scenes "
        f"of seed {args.seed} (mirrored at random), AdamW peak lr {args.lr}, loss L1 + {args.mse_weight} x MSE, "
        f"object pixels weighted {1 + args.object_weight:g}x; output {args.output}"
        + (f", plus {args.colour_weight} x palette cross-entropy on object pixels."
           if args.output == "palette" else "."),
        f"- Forward pass in {'bfloat16 autocast' if args.bf16 else 'float32'} (channels-last) while training; "
        "weights, losses and inference in float32. The learning-rate schedule (warm-up, cosine to 5%) runs on "
        f"steps alone ({args.steps})"
        + (f"; STOPPED EARLY by --max-minutes {args.max_minutes:g} (CPU minutes)." if info["stopped_early"]
           else ", so the weights depend on the seed and the step count, not on the machine's speed."),
        f"- Wall time {info['train_minutes']:.1f} min training ({info['train_cpu_minutes']:.1f} min of CPU time), "
        f"{info['total_minutes']:.1f} min with data and evaluation; "
        f"torch threads {args.threads}; machine {info['machine']}.",
        f"- {info['parameters']:,} parameters, float32 safetensors ({info['weights_bytes'] / 2**20:.1f} MiB).",
        f"- Development checks: {args.dev_scenes} scenes of seed {DEV_SEED} (final dev exact {dev['exact']:.3f}).",
        "",
        f"## Held-out evaluation ({rec['n']} scenes of seed {HELD_OUT_SEED})", "",
        "The pixel-only detector (`scenes/r3graph_scenes/detector.py`) reads each render and its reconstruction. "
        "Exact = every object's colour, shape and size and every pairwise relation right; bound = one-sided "
        "95% Clopper-Pearson lower bound on the exact rate.", "",
        "| input | exact scenes | exact | 95% lower bound | " + " | ".join(ASPECTS) + " | max pos. err |",
        "| --- " * (5 + len(ASPECTS)) + "|",
        row("renders", ren), row("reconstructions", rec), "",
        f"- Pixel MSE (values in [0, 1]): {held['pixel_mse']:.5f}",
        f"- Codes used on these scenes: {held['codes_used']} of {held['codebook_size']}",
        f"- Scenes the render reads right and the reconstruction does not: {len(held['lost_by_tokenizer'])} "
        f"(indices {held['lost_by_tokenizer'][:20]})",
        f"- Encode {held['encode_ms_per_image']:.2f} ms, decode {held['decode_ms_per_image']:.2f} ms per image "
        f"(batched, {args.threads} thread).", "",
        "## Limits", "",
        "Trained on scene-world images only (six palette colours on one background, four shapes); other "
        "images encode to codes, but their reconstructions mean nothing."
        + (" The palette output head can only draw the background blended with one of the world's six "
           "colours per pixel: exact colours for scene images, by construction." if args.output == "palette"
           else ""),
        "Wall times depend on what else the machine ran (`make train` runs the understanding model beside "
        "this); the CPU minutes are what this run used.", ""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="scenes/r3graph_scenes/models/scenes-imagegen/tokenizer")
    ap.add_argument("--seed", type=int, default=0, help="training scenes, sampler and init")
    ap.add_argument("--train-scenes", type=int, default=40000)
    ap.add_argument("--steps", type=int, default=3300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--levels", type=int, nargs="+", default=[8, 5, 5, 5])
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--latent-width", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--fine-width", type=int, default=16)
    ap.add_argument("--output", choices=("palette", "rgb"), default="palette")
    ap.add_argument("--object-weight", type=float, default=4.0)
    ap.add_argument("--mse-weight", type=float, default=1.0)
    ap.add_argument("--colour-weight", type=float, default=0.1, help="palette cross-entropy on object pixels")
    ap.add_argument("--dev-scenes", type=int, default=300)
    ap.add_argument("--held-out-scenes", type=int, default=1000)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--dev-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                    help="bfloat16 autocast for the network's forward pass while training")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="stop early (and say so) past this many CPU minutes; the lr schedule runs on --steps")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    tokenizer, info = train(args)
    info["command"] = "python -m r3graph_scenes.imagegen.train_tokenizer " + shlex.join(sys.argv[1:])
    info["machine"] = f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} CPUs"
    dev = evaluate_tokenizer(tokenizer, generate_scenes(DEV_SEED, args.dev_scenes), renders=False)["reconstructions"]
    held = evaluate_tokenizer(tokenizer, generate_scenes(HELD_OUT_SEED, args.held_out_scenes))
    out = Path(args.out)
    tokenizer.save(out)
    info["weights_bytes"] = (out / "model.safetensors").stat().st_size
    info["total_minutes"] = (time.time() - started) / 60
    print(f"dev exact {dev['exact']:.3f}; held-out exact {held['reconstructions']['exact']:.3f} "
          f"(bound {held['reconstructions']['lower_bound_95']:.3f}), renders {held['renders']['exact']:.3f}, "
          f"mse {held['pixel_mse']:.5f}, codes used {held['codes_used']}", flush=True)
    (out / "training_log.json").write_text(json.dumps(
        {"args": vars(args), "config": asdict(tokenizer.config), "train_seed": args.seed, "dev_seed": DEV_SEED,
         "held_out_seed": HELD_OUT_SEED, "dev": dev, "held_out": held, **info}, indent=1) + "\n")
    (out / "MODEL_CARD.md").write_text(model_card(args, info, held, dev))
    print(f"saved to {out}; total {info['total_minutes']:.1f} min (default command: {TRAIN_COMMAND})", flush=True)


if __name__ == "__main__":
    main()
