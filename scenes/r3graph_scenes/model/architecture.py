"""The scenes-vlm architecture: a tiny Idefics3 (SigLIP-style vision tower + Llama text model).

Idefics3 because it loads in vLLM's CPU build without torchvision. 64x64 images, patch 8 -> 64
patches; pixel shuffle with scale factor 2 -> 16 image tokens per image; image splitting off.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import (
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    PreTrainedTokenizerFast,
)

from r3graph_scenes.model.tokenizer import CHAT_TEMPLATE, IMAGE

IMAGE_SIZE = 64
IMAGE_SEQ_LEN = 16  # image tokens per image, fixed: (IMAGE_SIZE // patch) ** 2 // scale_factor ** 2


@dataclass(frozen=True)
class ModelSize:
    text_hidden: int = 256
    text_layers: int = 4
    text_heads: int = 8  # head_dim 32: a size vLLM's CPU attention backend accepts
    text_kv_heads: int = 4
    text_ffn: int = 768
    vision_hidden: int = 128
    vision_layers: int = 3
    vision_heads: int = 4
    vision_ffn: int = 384
    patch_size: int = 8  # 8 with scale 2, or 4 with scale 4: both give 16 image tokens
    scale_factor: int = 2


def build_model(
    tokenizer: PreTrainedTokenizerFast, size: ModelSize = ModelSize(), seed: int = 0
) -> Idefics3ForConditionalGeneration:
    torch.manual_seed(seed)
    text_config = {
        "model_type": "llama",
        "vocab_size": len(tokenizer),
        "hidden_size": size.text_hidden,
        "intermediate_size": size.text_ffn,
        "num_hidden_layers": size.text_layers,
        "num_attention_heads": size.text_heads,
        "num_key_value_heads": size.text_kv_heads,
        "head_dim": size.text_hidden // size.text_heads,
        "max_position_embeddings": 512,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision_config = {
        "hidden_size": size.vision_hidden,
        "intermediate_size": size.vision_ffn,
        "num_hidden_layers": size.vision_layers,
        "num_attention_heads": size.vision_heads,
        "image_size": IMAGE_SIZE,
        "patch_size": size.patch_size,
    }
    config = Idefics3Config(
        text_config=text_config,
        vision_config=vision_config,
        scale_factor=size.scale_factor,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE),
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
    )
    assert (IMAGE_SIZE // size.patch_size) ** 2 // size.scale_factor**2 == IMAGE_SEQ_LEN
    model = Idefics3ForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.do_sample = False
    return model


def build_processor(tokenizer: PreTrainedTokenizerFast) -> Idefics3Processor:
    # Images are rendered at exactly 64x64, so the resize steps are no-ops and no splitting happens.
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=False,
        size={"longest_edge": IMAGE_SIZE},
        max_image_size={"longest_edge": IMAGE_SIZE},
    )
    return Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=IMAGE_SEQ_LEN,
        chat_template=CHAT_TEMPLATE,
    )


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_bundle(model: Idefics3ForConditionalGeneration, processor: Idefics3Processor, out: str) -> None:
    """Weights (bfloat16 safetensors, to keep the shipped folder small), processor and tokenizer.

    The config declares float32 compute: the model was trained in float32, and vLLM runs a model in
    its config dtype, so greedy outputs match transformers' float32 (the parity test)."""
    model.to(torch.bfloat16).save_pretrained(out)
    model.to(torch.float32)
    model.config.dtype = torch.float32
    model.config.save_pretrained(out)
    processor.save_pretrained(out)
    processor.tokenizer.save_pretrained(out)  # the tokenizer config carries the chat template too


def load_bundle(
    path: str, dtype: torch.dtype = torch.float32
) -> tuple[Idefics3ForConditionalGeneration, Idefics3Processor]:
    model = Idefics3ForConditionalGeneration.from_pretrained(path, dtype=dtype)
    model.eval()
    processor = Idefics3Processor.from_pretrained(path)
    return model, processor
