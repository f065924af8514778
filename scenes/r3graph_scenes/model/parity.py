"""Check that transformers and vLLM produce the same greedy tokens for the shipped model.

Both stacks get the same chat messages (an ``image_url`` data-URL part then the stage text, the
layout of r3graph/messages.py); transformers goes through the processor's chat template with an
``image`` part. Run with the vLLM lock and cache variables (see the model card).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import random

from PIL import Image

from r3graph.prompts.pack import load_pack
from r3graph_scenes.plugin import SCENES_PACK


def _data_url(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _cases(n_scenes: int, seed: int) -> list[tuple[Image.Image, str]]:
    """A few stages per scene, with drafts taken from the scene's own (possibly corrupted) caption."""
    from r3graph_scenes.language import caption
    from r3graph_scenes.world import generate_scenes, render

    pack = load_pack(SCENES_PACK)  # by path: it is this package's own, found or not as a plugin
    rng = random.Random(seed)
    cases: list[tuple[Image.Image, str]] = []
    for scene in generate_scenes(seed, n_scenes):
        img, draft = render(scene), caption(scene)
        cases.append((img, pack.render("reason")))
        cases.append((img, pack.render("judge", draft=draft)))
        cases.append((img, pack.render("answer", question=f"is there a {rng.choice(['red', 'blue'])} circle?")))
        cases.append((img, pack.render("refine_blind", draft=draft)))
    return cases


def transformers_outputs(model_dir: str, cases: list[tuple[Image.Image, str]], max_new_tokens: int) -> list[list[int]]:
    import torch

    from r3graph_scenes.model.architecture import load_bundle

    model, processor = load_bundle(model_dir)
    outs: list[list[int]] = []
    for img, text in cases:  # one at a time: no padding effects in the comparison
        msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
        prompt = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        enc = processor(text=[prompt], images=[[img]], return_tensors="pt")
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
        ids = gen[0, enc.input_ids.shape[1]:].tolist()
        eos = processor.tokenizer.eos_token_id
        outs.append(ids[: ids.index(eos)] if eos in ids else ids)
    return outs


def vllm_outputs(model_dir: str, cases: list[tuple[Image.Image, str]], max_new_tokens: int) -> list[list[int]]:
    from vllm import LLM, SamplingParams

    llm = LLM(model=model_dir, dtype="float32", max_model_len=512, enforce_eager=True,
              limit_mm_per_prompt={"image": 1}, seed=0)
    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
    convs = [
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": _data_url(img)}},
                                      {"type": "text", "text": text}]}]
        for img, text in cases
    ]
    results = llm.chat(convs, params)
    return [list(r.outputs[0].token_ids) for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="scenes/r3graph_scenes/models/scenes-vlm")
    parser.add_argument("--scenes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cases = _cases(args.scenes, args.seed)
    hf = transformers_outputs(args.model, cases, args.max_new_tokens)
    vl = vllm_outputs(args.model, cases, args.max_new_tokens)
    eos = None
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model)
    eos = tok.eos_token_id
    vl = [v[: v.index(eos)] if eos in v else v for v in vl]
    same = sum(a == b for a, b in zip(hf, vl, strict=True))
    for (_, text), a, b in zip(cases, hf, vl, strict=True):
        mark = "same" if a == b else "DIFF"
        print(f"[{mark}] {text.splitlines()[-1][:40]!r}: hf={tok.decode(a)!r} vllm={tok.decode(b)!r}")
    result = {"cases": len(cases), "identical": same, "scenes": args.scenes, "seed": args.seed}
    print(json.dumps(result))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
