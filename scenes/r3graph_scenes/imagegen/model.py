"""The generator's architecture: a small Llama (HF ``LlamaForCausalLM``) whose vocabulary holds the image codes.

A plain Llama so vLLM serves it with no custom code: the server restricts decoding to the code
tokens (``code_token_offset`` .. ``+codebook_size`` in ``r3graph.json``) for exactly
``tokens_per_image`` tokens, then the image tokenizer decodes the codes to pixels. Head size 64: vLLM's
CPU attention takes 32, 64, 80, ... (shared/notes/vllm-on-cpu.md).

A model directory holds config.json, model.safetensors, generation_config.json, tokenizer.json,
tokenizer_config.json, r3graph.json and (from the tokenizer helper) ``tokenizer/``, the image tokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

from r3graph_scenes.imagegen.vocab import BOS, EDIT_PROMPT, EOI, GENERATION_PROMPT, PAD, TOKENS_PER_IMAGE, Vocab

IMAGE_TOKENIZER = "r3graph_scenes.imagegen.fsq:ImageTokenizer"
IMAGE_TOKENIZER_PATH = "tokenizer"  # relative to the model directory
DEFAULT_CODEBOOK = 1000
MAX_POSITIONS = 256  # the longest sequence, an edit with a long instruction, is about 160 tokens
WHY = ("scenes-imagegen: a tiny Llama trained from scratch on the scene world (scenes/r3graph_scenes) to write the 64 "
       "codes of a 64x64 image for a prompt, or for a source image and one edit sentence; see MODEL_CARD.md")


def llama_config(vocab_size: int, *, hidden: int = 256, layers: int = 6, heads: int = 4,
                 intermediate: int = 768) -> LlamaConfig:
    if hidden % heads or hidden // heads not in (32, 64, 80, 96, 112, 128, 256):
        raise ValueError(f"head size {hidden}/{heads} is not one vLLM's CPU attention takes")
    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, head_dim=hidden // heads,
        max_position_embeddings=MAX_POSITIONS, rms_norm_eps=1e-5, tie_word_embeddings=False,
        bos_token_id=BOS, eos_token_id=EOI, pad_token_id=PAD, dtype="float32",
    )


def r3graph_json(vocab: Vocab, why: str = WHY) -> dict[str, Any]:
    """What the image server reads from the model directory (schema shared with the serve helper)."""
    return {"kind": "image-tokens", "tokens_per_image": TOKENS_PER_IMAGE, "code_token_offset": vocab.code_offset,
            "codebook_size": vocab.codebook_size, "image_tokenizer": IMAGE_TOKENIZER,
            "image_tokenizer_path": IMAGE_TOKENIZER_PATH, "generation_prompt": GENERATION_PROMPT,
            "edit_prompt": EDIT_PROMPT, "why": why}


def save_model_dir(model: LlamaForCausalLM, vocab: Vocab, path: str | Path, why: str = WHY) -> Path:
    """Write a complete model directory (everything but the image tokenizer's ``tokenizer/``)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    GenerationConfig(bos_token_id=BOS, eos_token_id=EOI, pad_token_id=PAD, max_new_tokens=TOKENS_PER_IMAGE + 1,
                     do_sample=False).save_pretrained(path)
    vocab.save(path)
    (path / "r3graph.json").write_text(json.dumps(r3graph_json(vocab, why), indent=2) + "\n")
    return path


def build_untrained(path: str | Path, codebook_size: int = DEFAULT_CODEBOOK, seed: int = 0,
                    **arch: int) -> Path:
    """A loadable model directory with random weights (for tests of the loading and serving path).

    Writes an untrained image tokenizer into ``tokenizer/`` when the tokenizer module offers
    ``save`` (so the directory is complete); otherwise the caller supplies one.
    """
    vocab = Vocab(codebook_size)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config(len(vocab), **arch))
    out = save_model_dir(model, vocab, path, why="untrained: random weights, for tests only")
    try:
        from r3graph_scenes.imagegen.fsq import ImageTokenizer
    except ImportError:
        return out
    image_tokenizer = ImageTokenizer.untrained(seed=seed)
    if getattr(image_tokenizer, "codebook_size", codebook_size) == codebook_size and hasattr(image_tokenizer, "save"):
        image_tokenizer.save(out / IMAGE_TOKENIZER_PATH)
    return out


def load(path: str | Path) -> tuple[LlamaForCausalLM, Vocab, dict[str, Any]]:
    """Model (eval mode), vocabulary and r3graph.json of a model directory."""
    path = Path(path)
    meta = json.loads((path / "r3graph.json").read_text())
    vocab = Vocab(int(meta["codebook_size"]))
    if vocab.code_offset != meta["code_token_offset"]:
        raise ValueError(f"{path}: code_token_offset {meta['code_token_offset']} does not match this vocabulary "
                         f"({vocab.code_offset}); the model was built with another word list")
    model = LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
    model.eval()
    return model, vocab, meta
