"""Build a tiny random-weight Idefics3 model (HF format) offline, for serving tests.

Why: the real ``scenes-vlm`` model ships later; vLLM's serving path (chat template, image
processor, multimodal placeholders, prefix caching) can be exercised with any Idefics3 whose
shapes the CPU backend accepts. Weights are random, so generated text is gibberish.

Usage: python scripts/build_tiny_idefics3.py OUT_DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# Idefics3/SmolVLM-style template. Both `image` and `image_url` parts become `<image>`, because
# vLLM's chat path hands the template `image_url`-style parts while LangChain/HF use `image`.
CHAT_TEMPLATE = (
    "<|im_start|>"
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}: {{ message['content'] }}"
    "{% else %}{% if message['content'][0]['type'] in ('image', 'image_url') %}:{% else %}: {% endif %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] in ('image', 'image_url') %}<image>{% endif %}"
    "{% endfor %}{% endif %}"
    "<end_of_utterance>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<end_of_utterance>",
    "<image>",
    "<fake_token_around_image>",
    "<global-img>",
    *[f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)],
]

# A little text so the BPE merges look like words; content does not matter for random weights.
CORPUS = [
    "A red circle is above a blue square. The green triangle is left of the yellow star.",
    "Describe the scene. How many shapes are there? What colour is the largest object?",
    "Reason about the image, reflect on the answer, and refine it. The answer is correct.",
    '{"answer": "yes", "count": 3, "colour": "red", "confidence": 0.9, "issues": []}',
    "User: Assistant: System: question answer draft critique revision round final output",
    "0 1 2 3 4 5 6 7 8 9 ten twenty left right above below next to inside outside small large",
]


def build_tokenizer(out: Path):  # -> PreTrainedTokenizerFast
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable (JSON grammars)
    )
    tok.train_from_iterator(CORPUS * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[3:],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)

    import torch
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3Processor,
        LlamaConfig,
    )
    from transformers.models.idefics3.configuration_idefics3 import Idefics3VisionConfig
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    torch.manual_seed(args.seed)
    tokenizer = build_tokenizer(out)
    image_size, patch_size, scale_factor = 64, 8, 2
    image_seq_len = (image_size // patch_size) ** 2 // scale_factor**2  # 16

    text_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,  # head_dim 32: a size the CPU attention backend accepts
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    vision_config = Idefics3VisionConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch_size,
    )
    config = Idefics3Config(
        text_config=text_config.to_dict(),
        vision_config=vision_config.to_dict(),
        scale_factor=scale_factor,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,  # the default (128002) lies outside our vocabulary
        tie_word_embeddings=False,
    )
    model = Idefics3ForConditionalGeneration(config).eval()
    model.save_pretrained(out)

    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=False,  # one 64x64 view per image = 16 image tokens
        size={"longest_edge": image_size},
        max_image_size={"longest_edge": image_size},
    )
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=image_seq_len,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)
    tokenizer.save_pretrained(out)
    gen = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
    print(f"tiny Idefics3 written to {out} ({sum(p.numel() for p in model.parameters())} params)")


if __name__ == "__main__":
    main()
