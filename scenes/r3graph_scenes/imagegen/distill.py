"""Self-distillation of scenes-imagegen on R3's own trajectories (``bench/self_distill.py`` drives it).

* :func:`training_prompts`: prompts from the generator's TRAINING distribution (the data's own
  generation pairs: world captions and GenEval-template prompts), never a held-out one;
* :func:`distill_pairs`: (prompt, PNG) from image-mode trajectory records (``r3graph export --output
  image``) whose judge passed the final image, or the same runs' first drafts (a control);
* :func:`finetune`: continue training a COPY of the shipped weights on the original mix (generation
  pairs and edit triples, :mod:`.data`, :mod:`.train`'s loss and schedule) with a share of each
  batch's generation rows taken from extra (prompt, codes) pairs; no extra pairs = the control that
  only trains longer;
* :func:`generation_flags`: one-shot generation on the held-out prompts, scored per prompt from pixels
  exactly as :mod:`.evaluate_generator` scores it, so two models pair prompt by prompt.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from r3graph.export_images import load_image, read_image_jsonl
from r3graph_scenes.detector import detect
from r3graph_scenes.evaluation.image_scores import score_spec
from r3graph_scenes.geneval_prompts import TEMPLATE, geneval_prompts
from r3graph_scenes.imagegen.data import DataConfig, encoded_dataset, examples, held_out_prompts
from r3graph_scenes.imagegen.evaluate_generator import generate_codes
from r3graph_scenes.imagegen.fsq import ImageTokenizer
from r3graph_scenes.imagegen.model import IMAGE_TOKENIZER_PATH, load, save_model_dir
from r3graph_scenes.imagegen.train import collate, lr_at, sequences, target_loss

GENEVAL_PREFIX = TEMPLATE.format("")  # "a photo of "


def training_prompts(n: int, seed: int) -> list[str]:
    """``n`` distinct training prompts, half world captions and half GenEval-template ones (the template
    is what the held-out benchmark is phrased in), sampled with ``seed``; checked against the held-out set."""
    pairs, _ = examples(DataConfig())
    prompts = sorted({p.prompt for p in pairs})
    template = [p for p in prompts if p.startswith(GENEVAL_PREFIX)]
    captions = [p for p in prompts if not p.startswith(GENEVAL_PREFIX)]
    rng = random.Random(seed)
    chosen = rng.sample(template, min(n // 2, len(template)))
    chosen += rng.sample(captions, n - len(chosen))
    rng.shuffle(chosen)
    leaked = set(chosen) & held_out_prompts()
    if leaked:
        raise AssertionError(f"held-out prompts among the training prompts: {sorted(leaked)[:3]}")
    return chosen


Which = Literal["final", "first"]


def distill_pairs(jsonl: str | Path, which: Which = "final") -> list[tuple[str, bytes]]:
    """(prompt, PNG) of every run the judge passed: its final image, or its first draft (the control)."""
    out = []
    for record in read_image_jsonl(jsonl):
        if not record.passed:
            continue
        file = record.final if which == "final" else record.rounds[0].image if record.rounds else None
        if file is not None:
            out.append((record.prompt, load_image(jsonl, file)))
    return out


def encode_pngs(tokenizer: ImageTokenizer, pngs: Sequence[bytes]) -> np.ndarray:
    """(n, 64) codes of PNG images (the server decoded them from codes; this re-reads the pixels)."""
    import io

    return tokenizer.encode([Image.open(io.BytesIO(p)).convert("RGB") for p in pngs])


def finetune(base: Path, out: Path, extra_prompts: Sequence[str], extra_codes: np.ndarray, *, steps: int,
             extra_share: float = 0.25, batch_size: int = 32, edit_share: float = 0.35, lr: float = 3e-4,
             warmup: int = 20, seed: int = 0, threads: int = 1) -> dict:
    """Continue training ``base`` (copied to ``out`` first; ``base`` is never written) for ``steps``.

    Each batch: ``edit_share`` edit triples, the rest generation rows, of which ``extra_share`` come
    from the extra pairs (none when there are none: the control). AdamW restarts; lr warms up to
    ``lr`` and follows train.py's cosine to 10%."""
    torch.set_num_threads(threads)
    t0 = time.time()
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(base, out)
    model, vocab, _ = load(base)
    tokenizer = ImageTokenizer.load(base / IMAGE_TOKENIZER_PATH)
    gen, gen_p, edit, edit_p = sequences(vocab, encoded_dataset(tokenizer, DataConfig()))
    extra = [vocab.generation_prompt(p) + vocab.target(c) for p, c in zip(extra_prompts, extra_codes, strict=True)]
    extra_p = [len(vocab.generation_prompt(p)) for p in extra_prompts]
    n_edit = round(batch_size * edit_share)
    n_extra = round((batch_size - n_edit) * extra_share) if extra else 0
    torch.manual_seed(seed)
    rng = random.Random(seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.98))
    model.train()
    log: list[dict] = []
    sums: dict[str, list[float]] = {"gen": [0.0, 0], "extra": [0.0, 0], "edit": [0.0, 0]}
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, step / steps, lr, warmup)
        opt.zero_grad(set_to_none=True)
        parts = (("gen", gen, gen_p, rng.sample(range(len(gen)), batch_size - n_edit - n_extra)),
                 ("extra", extra, extra_p, [rng.randrange(len(extra)) for _ in range(n_extra)]),
                 ("edit", edit, edit_p, rng.sample(range(len(edit)), n_edit)))
        for name, seqs, plen, idx in parts:
            if not idx:
                continue
            loss = target_loss(model, collate([seqs[i] for i in idx], [plen[i] for i in idx]), bf16=True)
            (loss * len(idx) / batch_size).backward()
            sums[name][0] += float(loss.detach())
            sums[name][1] += 1
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % 25 == 0 or step + 1 == steps:
            entry = {"step": step + 1, "minutes": round((time.time() - t0) / 60, 2),
                     **{f"{k}_loss": round(v[0] / v[1], 4) for k, v in sums.items() if v[1]}}
            print(json.dumps(entry), flush=True)
            log.append(entry)
            sums = {k: [0.0, 0] for k in sums}
    model.eval()
    save_model_dir(model, vocab, out, why=f"self-distillation experiment (bench/self_distill.py); not shipped; "
                   f"{len(extra)} extra pairs")
    summary = {"base": str(base), "steps": steps, "batch_size": batch_size, "edit_share": edit_share,
               "extra_pairs": len(extra), "extra_rows_per_batch": n_extra, "lr": lr, "warmup": warmup, "seed": seed,
               "threads": threads, "minutes": round((time.time() - t0) / 60, 2), "log": log}
    (out / "distill_log.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def generation_flags(model_dir: Path, n_prompts: int = 300, threads: int = 1) -> dict:
    """Per held-out prompt (geneval_prompts(n) at the default seed): exact from pixels, greedy and sampled
    (evaluate_generator's decoding: codes only, 64 tokens, sampled at temperature 1 with its seed)."""
    torch.set_num_threads(threads)
    model, vocab, meta = load(model_dir)
    tokenizer = ImageTokenizer.load(model_dir / meta.get("image_tokenizer_path", IMAGE_TOKENIZER_PATH))
    cases = geneval_prompts(n_prompts)
    prompts = [vocab.generation_prompt(c.prompt) for c in cases]
    out: dict = {"categories": [c.category for c in cases]}
    for mode in ("greedy", "sampled"):
        images = tokenizer.decode(generate_codes(model, vocab, prompts, sample=mode == "sampled"))
        out[mode] = [bool(score_spec(c.spec, detect(img)).exact) for c, img in zip(cases, images, strict=True)]
    return out
