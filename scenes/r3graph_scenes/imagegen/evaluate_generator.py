"""Held-out scores of scenes-imagegen, read from PIXELS by the detector only.

``python -m r3graph_scenes.imagegen.evaluate_generator --model scenes/r3graph_scenes/models/scenes-imagegen``

* generation: the first ``n`` GenEval-category prompts at their default seed (none of them, nor their
  content in the GenEval template, is in training; see :mod:`.data`), one image each, generated with
  transformers restricted to the code tokens for exactly 64 tokens, decoded by the image tokenizer,
  read by :func:`~r3graph_scenes.detector.detect` and scored by
  :func:`~r3graph_scenes.evaluation.image_scores.score_spec` against the prompt's spec (overall exact = every
  object, colour, count and relation; sizes are not asked);
* edits: held-out mistake-and-fix triples (:func:`.data.held_out_edits`): the source painting is
  encoded, the model writes the edited image; ``fixed`` = the detector reads the result as satisfying
  the prompt the painting was for, ``target`` = it reads it as the exact editor's result (same objects,
  sizes and pairwise relations; for "add" the exact editor's place is one of many right ones);
* ceilings: the same scores for the tokenizer's reconstruction of a right image (no generator can beat
  what the tokenizer lets the detector read).

Greedy and sampled (temperature 1, top-k off, seeded) decoding. Intervals: two-sided 95% Clopper-Pearson.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from r3graph.evaluation.stats import binomial_lower_bound
from r3graph_scenes.detector import compare_scenes, detect
from r3graph_scenes.evaluation.image_scores import score_spec
from r3graph_scenes.geneval_prompts import geneval_prompts
from r3graph_scenes.imagegen.data import encode_scenes, held_out_edits
from r3graph_scenes.imagegen.vocab import TOKENS_PER_IMAGE, Vocab
from r3graph_scenes.language import parse_caption
from r3graph_scenes.painter import layout

SAMPLE_SEED = 9001


class CodesOnly(LogitsProcessor):
    """Every token but the image codes gets -inf: the model can only write an image."""

    def __init__(self, vocab: Vocab):
        self.lo, self.hi = vocab.code_offset, vocab.code_offset + vocab.codebook_size

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        out = torch.full_like(scores, float("-inf"))
        out[:, self.lo:self.hi] = scores[:, self.lo:self.hi]
        return out  # type: ignore[return-value]  # full_like keeps the FloatTensor


def generate_codes(model, vocab: Vocab, prompts: Sequence[list[int]], *, sample: bool = False,
                   seed: int = SAMPLE_SEED, batch_size: int = 64) -> np.ndarray:
    """(n, 64) codes for token-id prompts. Prompts are batched by length, so no padding is ever needed
    (the results do not depend on batch composition beyond float rounding)."""
    out = np.zeros((len(prompts), TOKENS_PER_IMAGE), dtype=np.int64)
    groups: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(prompts):
        groups[len(p)].append(i)
    torch.manual_seed(seed)
    with torch.inference_mode():
        for length in sorted(groups):
            idx = groups[length]
            for start in range(0, len(idx), batch_size):
                chunk = idx[start:start + batch_size]
                ids = torch.tensor([prompts[i] for i in chunk])
                gen = model.generate(
                    input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=TOKENS_PER_IMAGE,
                    min_new_tokens=TOKENS_PER_IMAGE, do_sample=sample, temperature=1.0 if sample else None,
                    top_k=0 if sample else None, top_p=1.0 if sample else None,
                    logits_processor=LogitsProcessorList([CodesOnly(vocab)]), pad_token_id=0)
                new = gen[:, length:]
                out[chunk] = np.array([vocab.codes(row) for row in new.tolist()])
    return out


def interval(k: int, n: int) -> list[float]:
    """Two-sided 95% Clopper-Pearson interval (each one-sided bound at 97.5%)."""
    if n == 0:
        return [0.0, 1.0]
    return [round(binomial_lower_bound(k, n, confidence=0.975), 4),
            round(1 - binomial_lower_bound(n - k, n, confidence=0.975), 4)]


def rate(flags: Sequence[bool]) -> dict:
    k, n = int(sum(flags)), len(flags)
    return {"rate": round(k / n, 4) if n else None, "k": k, "n": n, "ci95": interval(k, n)}


def score_generation(tokenizer, codes: np.ndarray, cases: list) -> dict:
    images = tokenizer.decode(codes)
    exact = [score_spec(c.spec, detect(img)).exact for c, img in zip(cases, images, strict=True)]
    per: dict[str, list[bool]] = defaultdict(list)
    for c, e in zip(cases, exact, strict=True):
        per[c.category].append(e)
    return {"overall": rate(exact), "per_category": {k: rate(v) for k, v in per.items()}}


def score_edits(tokenizer, codes: np.ndarray, triples: list) -> dict:
    found = [detect(img) for img in tokenizer.decode(codes)]
    fixed = [score_spec(parse_caption(t.prompt), f).exact for t, f in zip(triples, found, strict=True)]
    target = [compare_scenes(f, t.target).exact for t, f in zip(triples, found, strict=True)]
    return {"fixed": rate(fixed), "target": rate(target)}


def evaluate(model, vocab: Vocab, tokenizer, n_prompts: int = 300, n_edits: int = 300,
             modes: Sequence[str] = ("greedy", "sampled")) -> dict:
    cases = geneval_prompts(n_prompts)
    triples = held_out_edits(n_edits)
    gen_prompts = [vocab.generation_prompt(c.prompt) for c in cases]
    sources = encode_scenes(tokenizer, [t.source for t in triples])
    edit_prompts = [vocab.edit_prompt(s, t.instruction) for s, t in zip(sources, triples, strict=True)]
    result: dict = {"prompts": f"geneval_prompts({n_prompts}) at the default seed",
                    "edits": f"held_out_edits({n_edits})", "scorer": "detector on decoded pixels"}
    for mode in modes:
        sample = mode == "sampled"
        result[mode] = {"generation": score_generation(tokenizer, generate_codes(model, vocab, gen_prompts,
                                                                                sample=sample), cases),
                        "edit": score_edits(tokenizer, generate_codes(model, vocab, edit_prompts, sample=sample),
                                            triples)}
    # A generator that returns the painting unchanged: what the edit scores are worth against doing nothing.
    result["copy_source_baseline"] = {"edit": score_edits(tokenizer, sources, triples)}
    # Ceilings: right images (the painter's layout of each prompt; the exact editor's result) through the tokenizer.
    rng = random.Random(0)
    right = encode_scenes(tokenizer, [layout(c.prompt, rng) for c in cases])
    result["tokenizer_ceiling"] = {"generation": score_generation(tokenizer, right, cases),
                                   "edit": score_edits(tokenizer, encode_scenes(tokenizer, [t.target for t in triples]),
                                                       triples)}
    return result


def untrained_baseline(model, vocab: Vocab, tokenizer, n_prompts: int = 300, seed: int = 0) -> dict:
    """Generation scores of an untrained model of ``model``'s architecture (the chance level the shipped
    weights' test bound is set against)."""
    from transformers import LlamaForCausalLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        untrained = LlamaForCausalLM(model.config).eval()
    cases = geneval_prompts(n_prompts)
    prompts = [vocab.generation_prompt(c.prompt) for c in cases]
    return {mode: score_generation(tokenizer, generate_codes(untrained, vocab, prompts, sample=mode == "sampled"),
                                   cases) for mode in ("greedy", "sampled")}


def main(argv: list[str] | None = None) -> None:
    from r3graph_scenes.imagegen.fsq import ImageTokenizer
    from r3graph_scenes.imagegen.model import IMAGE_TOKENIZER_PATH, load

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="scenes/r3graph_scenes/models/scenes-imagegen")
    ap.add_argument("--prompts", type=int, default=300)
    ap.add_argument("--edits", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, vocab, meta = load(args.model)
    tokenizer = ImageTokenizer.load(f"{args.model}/{meta.get('image_tokenizer_path', IMAGE_TOKENIZER_PATH)}")
    print(json.dumps(evaluate(model, vocab, tokenizer, args.prompts, args.edits), indent=1))


if __name__ == "__main__":
    main()
