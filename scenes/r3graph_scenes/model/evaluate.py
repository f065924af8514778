"""Held-out evaluation of scenes-vlm: ``python -m r3graph_scenes.model.evaluate --model DIR``.

Scenes come from a seed never used in training or model selection (12345). Measures each skill
in isolation against exact truth, plus one full self_questions R3 pass where the model does every
stage itself. Writes bench/results/scenes-vlm.json and the scores block of the model card.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import defaultdict
from pathlib import Path

import torch

from r3graph.prompts.pack import PromptPack, load_pack
from r3graph.reflect.verdicts import read_judge, read_yes_no
from r3graph_scenes.edits import corrupt_caption, edit_instruction
from r3graph_scenes.image_edits import image_edit
from r3graph_scenes.language import caption
from r3graph_scenes.metrics import aggregate, score_caption
from r3graph_scenes.model.architecture import load_bundle
from r3graph_scenes.model.data import claim_findings, painted_for, question_findings
from r3graph_scenes.model.infer import generate, images_to_uint8
from r3graph_scenes.painter import apply_edit
from r3graph_scenes.plugin import SCENES_PACK
from r3graph_scenes.questions import answer_yes_no, questions_for, verify_answer
from r3graph_scenes.world import Scene, generate_scenes, render

HELD_OUT_SEED = 12345
CARD_BEGIN, CARD_END = "<!-- scores:begin -->", "<!-- scores:end -->"


def _em(outs: list[str], scenes: list) -> float:
    return sum(score_caption(o, s).exact_match for o, s in zip(outs, scenes, strict=True)) / max(len(outs), 1)


def _parse_edit(text: str) -> str:
    try:
        value = json.loads(text)
        return str(value.get("edit", "")) if isinstance(value, dict) else ""
    except json.JSONDecodeError:
        return ""


def _edit_scores(outs: list[str], targets: list[str | None], prompts: list[str], painted: list[Scene],
                 pack: PromptPack, seed: int) -> dict:
    """An image-mode edit (or the sentinel) against the exact target: exact output, detection (the
    sentinel iff the painting is right), and whether the stand-in editor, given the edit, fixes it."""
    rng = random.Random(seed)
    wrong = [t is not None for t in targets]
    # As the loop reads it: no edit = nothing to fix.
    sentinel = [read_judge(o, pack.accepted_passes).outcome != "edit" for o in outs]
    fixed = [score_caption(p, apply_edit(q, o, rng)).exact_match
             for o, p, q, w in zip(outs, prompts, painted, wrong, strict=True) if w]
    n_wrong, n_right = sum(wrong), len(wrong) - sum(wrong)
    return {
        "exact": sum(o == (t or pack.sentinel) for o, t in zip(outs, targets, strict=True)) / max(len(outs), 1),
        "detection_accuracy": sum(s != w for s, w in zip(sentinel, wrong, strict=True)) / max(len(outs), 1),
        "edit_exact": sum(o == t for o, t in zip(outs, targets, strict=True) if t is not None) / max(n_wrong, 1),
        "edit_recall": sum(not s for s, w in zip(sentinel, wrong, strict=True) if w) / max(n_wrong, 1),
        "sentinel_on_correct": sum(s for s, w in zip(sentinel, wrong, strict=True) if not w) / max(n_right, 1),
        "edit_applied_fixes": sum(fixed) / max(n_wrong, 1),
        "n_wrong": n_wrong, "n_correct": n_right,
    }


def evaluate(model_dir: str, n: int, seed: int = HELD_OUT_SEED) -> dict:
    pack = load_pack(SCENES_PACK)  # by path: it is this package's own, found or not as a plugin
    model, processor = load_bundle(model_dir)
    tok = processor.tokenizer
    scenes = generate_scenes(seed, n)
    images = images_to_uint8([render(s) for s in scenes])
    rng = random.Random(seed + 1)

    def run(pairs: list[tuple[int, str]], max_new: int = 64, shown: torch.Tensor = images) -> list[str]:
        idx = torch.tensor([i for i, _ in pairs], dtype=torch.long)
        return generate(model, tok, shown[idx], [t for _, t in pairs], max_new_tokens=max_new)

    out: dict = {"model": model_dir, "held_out_seed": seed, "n_scenes": n}
    # Reason: caption every scene.
    captions = run([(i, pack.render("reason")) for i in range(n)])
    scores = [score_caption(c, s) for c, s in zip(captions, scenes, strict=True)]
    out["caption"] = aggregate(scores)

    # Answer: one question per answerable family per scene.
    qs = [(i, q) for i, s in enumerate(scenes) for q in questions_for(s, rng)]
    answers = run([(i, pack.render("answer", question=q.text)) for i, q in qs], max_new=6)
    per: dict[str, list[bool]] = defaultdict(list)
    for (_, q), a in zip(qs, answers, strict=True):
        per[q.family].append(verify_answer(q, a))
    out["vqa"] = {f: sum(v) / len(v) for f, v in sorted(per.items())} | {
        "overall": sum(sum(v) for v in per.values()) / sum(len(v) for v in per.values()),
        "n": {f: len(v) for f, v in sorted(per.items())}}

    # Judge and refine on drafts: a third correct, two thirds with one injected error.
    drafts, wrong = [], []
    for s in scenes:
        bad = rng.random() < 2 / 3
        drafts.append(corrupt_caption(s, rng)[0] if bad else caption(s))
        wrong.append(edit_instruction(drafts[-1], s) is not None)
    judged = [_parse_edit(t) for t in run([(i, pack.render("judge", draft=d)) for i, d in enumerate(drafts)])]
    says_edit = [read_judge(e, pack.accepted_passes).outcome == "edit" for e in judged]
    ref_edits = [edit_instruction(d, s) for d, s in zip(drafts, scenes, strict=True)]
    n_wrong = max(sum(wrong), 1)
    via_edit = run([(i, pack.render("refine", draft=drafts[i], findings=judged[i]))
                    for i in range(n) if wrong[i] and says_edit[i]])
    wrong_idx = [i for i in range(n) if wrong[i]]
    true_edit = run([(i, pack.render("refine", draft=drafts[i], findings=ref_edits[i])) for i in wrong_idx])
    true_qf = run([(i, pack.render("refine", draft=drafts[i], findings=question_findings(drafts[i], scenes[i], 3)))
                   for i in wrong_idx])
    blind = run([(i, pack.render("refine_blind", draft=drafts[i])) for i in wrong_idx])
    right_idx = [i for i in range(n) if not wrong[i]]
    keep = run([(i, pack.render("refine", draft=drafts[i], findings=question_findings(drafts[i], scenes[i], 3)))
                for i in right_idx])
    out["judge"] = {
        "decision_accuracy": sum(se == w for se, w in zip(says_edit, wrong, strict=True)) / n,
        "json_valid": sum(bool(e) for e in judged) / n,
        "edit_recall": sum(se for se, w in zip(says_edit, wrong, strict=True) if w) / n_wrong,
        "sentinel_on_correct": sum(not se for se, w in zip(says_edit, wrong, strict=True) if not w)
        / max(n - sum(wrong), 1),
        "edit_exact": sum(j == r for j, r, w in zip(judged, ref_edits, wrong, strict=True) if w) / n_wrong,
        "judge_edit_then_refine_fixes": _em(via_edit, [scenes[i] for i in range(n) if wrong[i] and says_edit[i]])
        * len(via_edit) / n_wrong,
        "n_wrong": sum(wrong), "n_correct": n - sum(wrong),
    }
    wrong_scenes = [scenes[i] for i in wrong_idx]
    out["rewrite"] = {
        "with_true_question_findings": _em(true_qf, wrong_scenes),
        "with_true_edit": _em(true_edit, wrong_scenes),
        "blind": _em(blind, wrong_scenes),
        "keeps_correct_draft": _em(keep, [scenes[i] for i in right_idx]),
        "draft_exact_before": 0.0,
    }

    # One self_questions R3 pass, every stage by the model: reason -> questions -> answer -> refine.
    qlists = [t.splitlines() for t in run([(i, pack.render("questions", draft=captions[i], k=3)) for i in range(n)])]
    flat = [(i, text) for i in range(n) for text in qlists[i] if text.strip()]
    ans = run([(i, pack.render("answer", question=text)) for i, text in flat], max_new=6)
    findings: dict[int, list[tuple[str, str, bool]]] = defaultdict(list)
    q_right = 0
    for (i, text), a in zip(flat, ans, strict=True):
        findings[i].append((text, a, read_yes_no(a, yes_words=pack.yes_words).verdict == "yes"))
        q_right += (a.strip().split(" ")[0] == answer_yes_no(text, scenes[i]))
    refined = run([(i, pack.render("refine", draft=captions[i], findings=pack.render_findings(findings[i])))
                   for i in range(n)])
    out["loop_self_questions"] = {
        "caption_exact_before": _em(captions, scenes),
        "caption_exact_after": _em(refined, scenes),
        "caption_f1_before": out["caption"]["f1"],
        "caption_f1_after": aggregate([score_caption(r, s) for r, s in zip(refined, scenes, strict=True)])["f1"],
        "self_answer_accuracy": q_right / max(len(flat), 1),
    }
    del out["rewrite"]["draft_exact_before"]

    # Output mode "image": the model is shown a painting of caption(scene), drawn like the training data
    # (painted_for: right 30% of the time, else one generator mistake), from its own rng so the numbers
    # above do not move. Targets are exact: image_edit(prompt, painting, scene), or the sentinel.
    image_pack = pack.for_output("image")
    irng = random.Random(seed + 2)
    prompts = [caption(s) for s in scenes]
    painted = [painted_for(s, irng) for s in scenes]
    paintings = images_to_uint8([render(p) for p in painted])
    targets = [image_edit(p, q, s) for p, q, s in zip(prompts, painted, scenes, strict=True)]
    judged_image = run([(i, image_pack.render("judge", instruction=prompts[i])) for i in range(n)], shown=paintings)
    out["judge_image"] = _edit_scores([_parse_edit(t) for t in judged_image], targets, prompts, painted, pack, seed)
    out["judge_image"]["json_valid"] = sum(bool(_parse_edit(t)) for t in judged_image) / max(n, 1)
    # Findings as the loop produces them, in the training mix: the prompt's questions (70%) or its
    # claims, answered by the painting's truth.
    image_findings = [question_findings(prompts[i], painted[i], 3) if irng.random() < 0.7
                      else claim_findings(prompts[i], painted[i]) for i in range(n)]
    edited = run([(i, image_pack.render("refine", instruction=prompts[i], findings=image_findings[i]))
                  for i in range(n)], shown=paintings)
    out["edit_image"] = _edit_scores(edited, targets, prompts, painted, pack, seed)
    out["examples"] = [{"truth": caption(scenes[i]), "caption": captions[i], "refined": refined[i]}
                      for i in range(min(5, n))]
    return out


def _card_block(r: dict, minutes: float) -> str:
    c, v, j, w, lp = r["caption"], r["vqa"], r["judge"], r["rewrite"], r["loop_self_questions"]
    lines = [
        f"Held-out: {r['n_scenes']} scenes from seed {r['held_out_seed']} "
        f"(greedy, transformers; eval {minutes:.1f} min).",
        "",
        "| skill | metric | score |", "| --- | --- | --- |",
        f"| reason | caption F1 / exact match | {c['f1']:.3f} / {c['exact_match']:.3f} |",
        f"| reason | relation accuracy / hallucination rate | {c['relation_accuracy']:.3f} / "
        f"{c['hallucination_rate']:.3f} |",
    ]
    lines += [f"| answer | VQA {f} (n={v['n'][f]}) | {v[f]:.3f} |" for f in v["n"]]
    lines += [
        f"| answer | VQA overall | {v['overall']:.3f} |",
        f"| judge | sentinel-vs-edit decision accuracy | {j['decision_accuracy']:.3f} |",
        f"| judge | edit equals the reference edit (wrong drafts) | {j['edit_exact']:.3f} |",
        f"| judge | its edit, then refine, gives an exact caption | {j['judge_edit_then_refine_fixes']:.3f} |",
        f"| refine | exact match with true question findings | {w['with_true_question_findings']:.3f} |",
        f"| refine | exact match with the true edit | {w['with_true_edit']:.3f} |",
        f"| refine_blind | exact match (no findings) | {w['blind']:.3f} |",
        f"| refine | keeps a correct draft correct | {w['keeps_correct_draft']:.3f} |",
        f"| loop | self_questions pass, caption EM before -> after | {lp['caption_exact_before']:.3f} -> "
        f"{lp['caption_exact_after']:.3f} |",
        f"| loop | its own answers to its own questions correct | {lp['self_answer_accuracy']:.3f} |",
    ]
    for skill, what in (("judge_image", "judge a painting of the prompt"), ("edit_image", "findings -> one edit")):
        if skill not in r:  # results written before the image skills existed
            continue
        m = r[skill]
        lines += [
            f"| {skill} | {what}: exact edit or sentinel | {m['exact']:.3f} |",
            f"| {skill} | detection: sentinel iff the painting is right | {m['detection_accuracy']:.3f} |",
            f"| {skill} | edit equals the exact edit (wrong paintings, n={m['n_wrong']}) | {m['edit_exact']:.3f} |",
            f"| {skill} | sentinel on right paintings (n={m['n_correct']}) | {m['sentinel_on_correct']:.3f} |",
            f"| {skill} | its edit, applied by the stand-in editor, fixes the painting | "
            f"{m['edit_applied_fixes']:.3f} |",
        ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="scenes/r3graph_scenes/models/scenes-vlm")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--out", default="bench/results/scenes-vlm.json")
    ap.add_argument("--no-card", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.time()
    result = evaluate(args.model, args.n)
    minutes = (time.time() - t0) / 60
    result["eval_minutes"] = minutes
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    block = _card_block(result, minutes)
    print(block)
    card = Path(args.model) / "MODEL_CARD.md"
    if not args.no_card and card.is_file():
        text = card.read_text()
        if CARD_BEGIN in text and CARD_END in text:
            head, rest = text.split(CARD_BEGIN, 1)
            card.write_text(head + CARD_BEGIN + "\n" + block + "\n" + CARD_END + rest.split(CARD_END, 1)[1])


if __name__ == "__main__":
    main()
