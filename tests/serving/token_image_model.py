"""A tiny random token-image model directory for the image-server tests, and the image tokenizer it names.

The layout is the one ``r3graph.serving.token_images`` reads (an HF LlamaForCausalLM whose vocabulary
holds the code tokens ``<c0>..<c{K-1}>``, a ``tokenizers`` tokenizer, ``r3graph.json``); the weights are
random, so what it draws means nothing. :class:`GridTokenizer` is an exact image tokenizer: code ``k`` of
cell ``i`` paints the 8x8 cell ``i`` of a 64x64 image in palette colour ``k``, and encoding reads the
cells back, so a test can recover the very codes the model sampled from the PNG the server sent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SIDE, GRID = 64, 8  # 64x64 pixels, 8x8 cells of 8x8 pixels: 64 codes an image
WORDS = ("a an the and of is to left right above below red blue green yellow purple orange small large circle "
         "square triangle star . make add remove move").split()
SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>", "<gen>", "<edit>", "<boi>", "<eoi>")


class GridTokenizer:
    """``encode(images) -> (n, 64)`` codes, ``decode(codes) -> list of 64x64 PIL images`` (see the module)."""

    def __init__(self, palette: np.ndarray) -> None:
        self.palette = np.asarray(palette, dtype=np.int64)  # (K, 3)

    @classmethod
    def load(cls, path: str | Path) -> GridTokenizer:
        return cls(np.array(json.loads((Path(path) / "palette.json").read_text())))

    def encode(self, images: list[Image.Image]) -> np.ndarray:
        out = []
        for img in images:
            pixels = np.asarray(img.convert("RGB").resize((SIDE, SIDE), Image.Resampling.BOX), dtype=np.int64)
            cells = pixels.reshape(GRID, SIDE // GRID, GRID, SIDE // GRID, 3).mean(axis=(1, 3)).reshape(-1, 3)
            out.append(((cells[:, None, :] - self.palette[None]) ** 2).sum(-1).argmin(-1))
        return np.stack(out)

    def decode(self, codes: Any) -> list[Image.Image]:
        images = []
        for row in np.asarray(codes, dtype=np.int64).reshape(-1, GRID * GRID):
            cells = self.palette[row].reshape(GRID, GRID, 3).astype(np.uint8)
            images.append(Image.fromarray(cells, "RGB").resize((SIDE, SIDE), Image.Resampling.NEAREST))
        return images


def build_tiny_token_image_model(path: str | Path, codebook_size: int = 16, seed: int = 0,
                                 max_positions: int = 256) -> Path:
    """A random LlamaForCausalLM over SPECIALS + WORDS + ``<c0>..<c{K-1}>`` with its tokenizers and r3graph.json."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    vocab = {w: i for i, w in enumerate([*SPECIALS, *WORDS, *(f"<c{k}>" for k in range(codebook_size))])}
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=max_positions,
                         bos_token_id=vocab["<bos>"], eos_token_id=vocab["<eos>"], pad_token_id=vocab["<pad>"],
                         tie_word_embeddings=False, torch_dtype="float32")
    LlamaForCausalLM(config).save_pretrained(path, safe_serialization=True)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()  # "<c12>" stays one token
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>",
                            pad_token="<pad>").save_pretrained(path)
    rng = np.random.default_rng(seed)
    (path / "tokenizer").mkdir(exist_ok=True)
    palette = rng.integers(0, 256, size=(codebook_size, 3))
    while len({tuple(c) for c in palette}) < codebook_size:  # distinct colours: decoding is exact
        palette = rng.integers(0, 256, size=(codebook_size, 3))
    (path / "tokenizer" / "palette.json").write_text(json.dumps(palette.tolist()))
    (path / "r3graph.json").write_text(json.dumps({
        "kind": "image-tokens", "tokens_per_image": GRID * GRID, "code_token_offset": vocab["<c0>"],
        "codebook_size": codebook_size, "image_tokenizer": "tests.serving.token_image_model:GridTokenizer",
        "image_tokenizer_path": "tokenizer", "generation_prompt": "<bos> <gen> {prompt} <boi>",
        "edit_prompt": "<bos> <edit> <boi> {source} <eoi> {instruction} <boi>",
    }, indent=1))
    return path
