"""Shared tensor plumbing for training and evaluation: images, prompt tokens, batched greedy decoding.

Prompts are built as the chat template renders them and expanded the way the Idefics3 processor
expands ``<image>``; :func:`check_matches_processor` asserts that equivalence so training sees
exactly the token sequence that transformers' processor and vLLM's chat path produce.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from transformers import Idefics3ForConditionalGeneration, Idefics3Processor, PreTrainedTokenizerFast

from r3graph_scenes.model.architecture import IMAGE_SEQ_LEN
from r3graph_scenes.model.tokenizer import BOS, EOS, FAKE_IMAGE, GLOBAL_IMAGE, IMAGE

IMAGE_EXPANSION = FAKE_IMAGE + GLOBAL_IMAGE + IMAGE * IMAGE_SEQ_LEN + FAKE_IMAGE


def prompt_text(stage_text: str, system: str | None = None, expand: bool = True) -> str:
    """The chat-template rendering of [system] + one user turn [image, stage text] + generation prompt."""
    head = f"{BOS}System:{system}{EOS}\n" if system else BOS
    image = IMAGE_EXPANSION if expand else IMAGE
    return f"{head}User:{image}{stage_text}{EOS}\nAssistant:\n"


def images_to_uint8(images: list[Image.Image]) -> torch.Tensor:
    """(N, 3, 64, 64) uint8: 12 KB per image, normalised per batch to save memory."""
    return torch.from_numpy(np.stack([np.asarray(im.convert("RGB")) for im in images])).permute(0, 3, 1, 2).contiguous()


def pixel_values(batch_uint8: torch.Tensor) -> torch.Tensor:
    """What Idefics3ImageProcessor does to a 64x64 image with no resize: rescale, then mean/std 0.5."""
    return ((batch_uint8.float() / 255.0 - 0.5) / 0.5).unsqueeze(1)  # (B, 1 image, 3, H, W)


def check_matches_processor(processor: Idefics3Processor, image: Image.Image, stage_text: str) -> None:
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": stage_text}]}]
    rendered = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert rendered == prompt_text(stage_text, expand=False), (rendered, prompt_text(stage_text, expand=False))
    enc = processor(text=[rendered], images=[[image]], return_tensors="pt")
    ours = processor.tokenizer(prompt_text(stage_text), add_special_tokens=False).input_ids
    assert enc.input_ids[0].tolist() == ours, "prompt tokens differ from the processor's"
    mine = pixel_values(images_to_uint8([image]))
    assert torch.allclose(enc.pixel_values.float(), mine, atol=1e-5), "pixel values differ from the processor's"


@torch.no_grad()
def generate(
    model: Idefics3ForConditionalGeneration,
    tokenizer: PreTrainedTokenizerFast,
    images_uint8: torch.Tensor,
    stage_texts: list[str],
    max_new_tokens: int = 48,
    batch_size: int = 64,
) -> list[str]:
    """Greedy outputs for (image, stage text) pairs, batched with left padding."""
    was_training = model.training
    model.eval()
    outs: list[str] = []
    for start in range(0, len(stage_texts), batch_size):
        texts = [prompt_text(t) for t in stage_texts[start : start + batch_size]]
        ids = [tokenizer(t, add_special_tokens=False).input_ids for t in texts]
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, x in enumerate(ids):
            input_ids[i, width - len(x) :] = torch.tensor(x)
            mask[i, width - len(x) :] = 1
        pv = pixel_values(images_uint8[start : start + batch_size])
        gen = model.generate(
            input_ids=input_ids, attention_mask=mask, pixel_values=pv,
            pixel_attention_mask=torch.ones(pv.shape[0], 1, pv.shape[-2], pv.shape[-1], dtype=torch.bool),
            max_new_tokens=max_new_tokens, do_sample=False,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        )
        outs += tokenizer.batch_decode(gen[:, width:], skip_special_tokens=True)
    model.train(was_training)
    return [o.strip() for o in outs]
