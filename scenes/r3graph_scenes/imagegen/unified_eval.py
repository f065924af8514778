"""Held-out understanding and generation of a U / G / U+G model (:mod:`.unified_train`), item by item.

``python -m r3graph_scenes.imagegen.unified_eval --model .cache/unified/ug --out .cache/unified/ug/eval.json``

Understanding (greedy, decoding restricted to words and <eos>), on the codes the shipped image
tokenizer gives renders of held-out scenes (seed 12345, 300 scenes: scenes-vlm's held-out scenes and,
with ``Random(12346)``, its very questions):

* caption: exact string match with the canonical caption, and exact by the scene metric
  (:func:`~r3graph_scenes.metrics.score_caption`, what scenes-vlm's card reports);
* vqa: :func:`~r3graph_scenes.questions.verify_answer`, per family;
* every item also gets the teacher-forced NLL of its right answer (per answer token, <eos> included);
* judge: ``held_out_edits`` triples (seed 7707): the wrong painting against its prompt (expected: the
  judge's edit) and the exact editor's result against it (expected: pass, or the edit it still needs);
  decision = says pass exactly when it should; exact = the expected sentence word for word.

Generation (greedy, restricted to codes; :func:`.evaluate_generator.generate_codes`), read from pixels by
the detector: ``geneval_prompts(300)`` exact and per aspect, and ``held_out_edits(300)`` fixed / target,
as the shipped model card. Also the teacher-forced mean NLL of a right image's codes per prompt and per
edit (the painter's layout; the exact editor's result): a finer measure of generation learning when
few images are exact.

Every score is written per item, so the bench script can pair models on the same items.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import LlamaForCausalLM, LogitsProcessor, LogitsProcessorList

from r3graph_scenes.detector import compare_scenes, detect
from r3graph_scenes.evaluation.image_scores import score_spec
from r3graph_scenes.geneval_prompts import geneval_prompts
from r3graph_scenes.image_edits import image_edit
from r3graph_scenes.imagegen.data import DataConfig, encode_scenes, held_out_edits
from r3graph_scenes.imagegen.evaluate_generator import generate_codes
from r3graph_scenes.imagegen.fsq import SHIPPED_DIR, ImageTokenizer
from r3graph_scenes.imagegen.train import collate
from r3graph_scenes.imagegen.unified_data import (
    HELD_OUT_SEED,
    PASS,
    UnifiedVocab,
    canonical,
    held_out_questions,
    training_items,
)
from r3graph_scenes.imagegen.vocab import EOS, PAD
from r3graph_scenes.language import caption, parse_caption
from r3graph_scenes.metrics import score_caption
from r3graph_scenes.painter import layout
from r3graph_scenes.questions import verify_answer
from r3graph_scenes.world import generate_scenes


class WordsOnly(LogitsProcessor):
    """Every token but words and <eos> gets -inf: an understanding answer is text."""

    def __init__(self, vocab: UnifiedVocab):
        self.allowed = torch.tensor([vocab.is_word(i) for i in range(len(vocab))])

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return scores.masked_fill(~self.allowed, float("-inf"))  # type: ignore[return-value]


def generate_words(model, vocab: UnifiedVocab, prompts: Sequence[list[int]], max_new: int,
                   batch_size: int = 64) -> list[str]:
    """Greedy answers, batched by prompt length so no padding is needed."""
    out = [""] * len(prompts)
    groups: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(prompts):
        groups[len(p)].append(i)
    procs = LogitsProcessorList([WordsOnly(vocab)])
    with torch.inference_mode():
        for length in sorted(groups):
            for start in range(0, len(groups[length]), batch_size):
                chunk = groups[length][start:start + batch_size]
                ids = torch.tensor([prompts[i] for i in chunk])
                gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new,
                                     do_sample=False, eos_token_id=EOS, pad_token_id=PAD, logits_processor=procs)
                for i, row in zip(chunk, gen[:, length:].tolist(), strict=True):
                    out[i] = vocab.decode_words(row)
    return out


def target_nll(model, seqs: list[list[int]], prompt_lens: list[int], batch_size: int = 32) -> list[float]:
    """Mean per-token NLL of each sequence's target (everything after its prompt)."""
    out: list[float] = []
    with torch.inference_mode():
        for start in range(0, len(seqs), batch_size):
            batch = collate(seqs[start:start + batch_size], prompt_lens[start:start + batch_size])
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
            labels = batch["labels"][:, 1:]
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2).float(), labels, ignore_index=-100,
                                                    reduction="none")
            mask = labels != -100
            out += (nll.sum(1) / mask.sum(1)).tolist()
    return [round(x, 4) for x in out]


def understanding(model, vocab: UnifiedVocab, tokenizer, n_scenes: int, n_judge: int) -> dict:
    scenes = generate_scenes(HELD_OUT_SEED, n_scenes)
    codes = encode_scenes(tokenizer, scenes)
    truth = [caption(s) for s in scenes]
    caps = generate_words(model, vocab, [vocab.caption_prompt(c) for c in codes], max_new=48)
    scored = [score_caption(c, s) for c, s in zip(caps, scenes, strict=True)]
    cap_items = [{"pred": c, "truth": t, "string_exact": canonical(c) == canonical(t), "exact": sc.exact_match,
                  "f1": round(sc.f1, 4)} for c, t, sc in zip(caps, truth, scored, strict=True)]
    qs = held_out_questions(scenes)
    answers = generate_words(model, vocab, [vocab.vqa_prompt(codes[i], q.text) for i, q in qs], max_new=4)
    vqa_items = [{"family": q.family, "question": q.text, "answer": q.answer, "pred": a,
                  "correct": verify_answer(q, a)} for (_, q), a in zip(qs, answers, strict=True)]
    triples = held_out_edits(n_judge)
    shown, prompts, expected = [], [], []
    for t in triples:
        for scene in (t.source, t.target):  # the wrong painting, then the exact editor's fix of it
            shown.append(scene)
            prompts.append(t.prompt)
            expected.append(image_edit(t.prompt, scene, t.target) or PASS)
    jcodes = encode_scenes(tokenizer, shown)
    said = generate_words(model, vocab, [vocab.judge_prompt(c, p) for c, p in zip(jcodes, prompts, strict=True)],
                          max_new=24)
    judge_items = [{"prompt": p, "expected": e, "pred": s, "decision": (s == PASS) == (e == PASS),
                    "exact": canonical(s) == canonical(e)} for p, e, s in zip(prompts, expected, said, strict=True)]
    # Teacher-forced NLL of the right answer: finer than accuracy while answers are still mostly wrong.
    for items, prompts_, answers_ in (
            (cap_items, [vocab.caption_prompt(c) for c in codes], truth),
            (vqa_items, [vocab.vqa_prompt(codes[i], q.text) for i, q in qs], [q.answer for _, q in qs]),
            (judge_items, [vocab.judge_prompt(c, p) for c, p in zip(jcodes, prompts, strict=True)], expected)):
        nlls = target_nll(model, [p + vocab.answer(a) for p, a in zip(prompts_, answers_, strict=True)],
                          [len(p) for p in prompts_])
        for item, x in zip(items, nlls, strict=True):
            item["nll"] = x
    return {"caption": cap_items, "vqa": vqa_items, "judge": judge_items}


def generation(model, vocab: UnifiedVocab, tokenizer, n_prompts: int, n_edits: int) -> dict:
    cases = geneval_prompts(n_prompts)
    images = tokenizer.decode(generate_codes(model, vocab, [vocab.generation_prompt(c.prompt) for c in cases]))
    gen_items = []
    for c, img in zip(cases, images, strict=True):
        s = score_spec(c.spec, detect(img))
        gen_items.append({"prompt": c.prompt, "category": c.category, "exact": s.exact, "objects": s.objects,
                          "colours": s.colours, "counts": s.counts})
    triples = held_out_edits(n_edits)
    sources = encode_scenes(tokenizer, [t.source for t in triples])
    found = [detect(img) for img in tokenizer.decode(generate_codes(
        model, vocab, [vocab.edit_prompt(s, t.instruction) for s, t in zip(sources, triples, strict=True)]))]
    edit_items = [{"instruction": t.instruction, "fixed": score_spec(parse_caption(t.prompt), f).exact,
                   "target": compare_scenes(f, t.target).exact} for t, f in zip(triples, found, strict=True)]
    # Teacher-forced NLL of right images: the painter's layout of each prompt, the exact editor's result.
    rng = random.Random(0)
    right = encode_scenes(tokenizer, [layout(c.prompt, rng) for c in cases])
    gp = [vocab.generation_prompt(c.prompt) for c in cases]
    ep = [vocab.edit_prompt(s, t.instruction) for s, t in zip(sources, triples, strict=True)]
    targets = encode_scenes(tokenizer, [t.target for t in triples])
    gen_nll = target_nll(model, [p + vocab.target(r) for p, r in zip(gp, right, strict=True)], [len(p) for p in gp])
    edit_nll = target_nll(model, [p + vocab.target(r) for p, r in zip(ep, targets, strict=True)], [len(p) for p in ep])
    for item, x in zip(gen_items, gen_nll, strict=True):
        item["nll"] = x
    for item, x in zip(edit_items, edit_nll, strict=True):
        item["nll"] = x
    return {"generation": gen_items, "edit": edit_items}


def chance_baselines() -> dict:
    """Majority answers of the training data: per VQA family, and the most frequent caption."""
    items = training_items(DataConfig())
    per: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for it in items["vqa"]:
        per[it.family][it.answer] += 1
    caps: dict[str, int] = defaultdict(int)
    for it in items["caption"]:
        caps[it.answer] += 1
    return {"vqa_majority": {f: max(c, key=lambda a: c[a]) for f, c in per.items()},
            "caption_majority": max(caps, key=lambda a: caps[a])}


def sides(model_dir: str, parts: str) -> tuple[bool, bool]:
    """(evaluate understanding, evaluate generation). ``auto``: a side the model never trained on is
    skipped (its tokens were never seen: the score is chance by construction, and the CPU is shared)."""
    if parts != "auto":
        return parts in ("both", "understanding"), parts in ("both", "generation")
    log = Path(model_dir) / "training_log.json"
    if not log.is_file():
        return True, True
    plan = json.loads(log.read_text())["plan"]
    return plan["caption"] + plan["vqa"] + plan["judge"] > 0, plan["gen"] + plan["edit"] > 0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--scenes", type=int, default=300)
    ap.add_argument("--judge", type=int, default=150, help="held-out edit triples for the judge (2 cases each)")
    ap.add_argument("--prompts", type=int, default=300)
    ap.add_argument("--edits", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--parts", default="auto", choices=("auto", "both", "understanding", "generation"),
                    help="auto: the sides the model was trained on (its training_log.json's batch plan)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    tokenizer = ImageTokenizer.load(SHIPPED_DIR)
    vocab = UnifiedVocab(tokenizer.codebook_size)
    model = LlamaForCausalLM.from_pretrained(args.model, torch_dtype=torch.float32).eval()
    if model.config.vocab_size != len(vocab):
        raise ValueError(f"{args.model}: vocab_size {model.config.vocab_size} is not the unified vocabulary's "
                         f"{len(vocab)}; evaluate a model from unified_train")
    und_side, gen_side = sides(args.model, args.parts)
    result: dict = {"model": args.model, "args": vars(args)}
    if und_side:
        result["understanding"] = understanding(model, vocab, tokenizer, args.scenes, args.judge)
        result["chance"] = chance_baselines()
    if gen_side:
        result["generation"] = generation(model, vocab, tokenizer, args.prompts, args.edits)
    result["eval_minutes"] = round((time.time() - t0) / 60, 2)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    summary = {k: round(float(np.mean([x[m] for x in result[side][k]])), 3) for side, k, m in
               (("understanding", "caption", "exact"), ("understanding", "vqa", "correct"),
                ("understanding", "judge", "decision"), ("generation", "generation", "exact"),
                ("generation", "edit", "fixed")) if side in result}
    print(json.dumps(summary), f"{result['eval_minutes']} min", flush=True)


if __name__ == "__main__":
    main()
