"""The image generator: vocabulary, prompt formats, model directory, training step, shipped weights."""

from __future__ import annotations

import json
import random

import pytest
import torch
from transformers import AutoTokenizer, LlamaForCausalLM

from r3graph.scenes.geneval_prompts import geneval_prompts
from r3graph.scenes.imagegen.model import build_untrained, load
from r3graph.scenes.imagegen.vocab import BOI, BOS, EDIT, EDIT_PROMPT, EOI, GEN, GENERATION_PROMPT, UNK, Vocab

K = 1000


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_untrained(tmp_path_factory.mktemp("gen") / "m", codebook_size=K, seed=0, layers=2)


def test_every_geneval_word_is_in_the_vocabulary():
    vocab = Vocab(K)
    assert all(not vocab.unknown_words(p.prompt) for p in geneval_prompts(600))


def test_unknown_words_are_reported_and_become_unk():
    vocab = Vocab(K)
    assert vocab.unknown_words("a zebra and a Zebra, a red circle") == ["zebra"]
    assert vocab.generation_prompt("a zebra") == [BOS, GEN, vocab.ids["a"], UNK, BOI]


def test_prompt_formats_and_code_round_trip():
    vocab = Vocab(K)
    codes = [random.Random(1).randrange(K) for _ in range(64)]
    edit = vocab.edit_prompt(codes, "add a red circle")
    assert edit[:3] == [BOS, EDIT, BOI] and edit[67] == EOI and edit[-1] == BOI
    assert vocab.codes(edit[3:67]) == codes
    assert vocab.target(codes) == [*edit[3:67], EOI]
    with pytest.raises(ValueError):
        vocab.code_ids(codes[:63])
    with pytest.raises(ValueError):
        vocab.codes([vocab.ids["red"]])


def test_saved_tokenizer_splits_text_like_the_vocabulary(model_dir):
    vocab, hf = Vocab(K), AutoTokenizer.from_pretrained(model_dir)
    codes = list(range(0, 2 * 64, 2))
    text = "Change the red circle to a small BLUE circle."
    assert hf(EDIT_PROMPT.format(source=vocab.format_source(codes), instruction=text))["input_ids"] == \
        vocab.edit_prompt(codes, text)
    assert hf(GENERATION_PROMPT.format(prompt="a photo of a red circle"))["input_ids"] == \
        vocab.generation_prompt("a photo of a red circle")


def test_build_untrained_writes_a_loadable_model_dir(model_dir):
    meta = json.loads((model_dir / "r3graph.json").read_text())
    vocab = Vocab(K)
    assert meta["code_token_offset"] == vocab.code_offset and meta["codebook_size"] == K
    assert meta["tokens_per_image"] == 64 and meta["kind"] == "image-tokens"
    model, _, _ = load(model_dir)
    assert isinstance(model, LlamaForCausalLM) and model.config.vocab_size == len(vocab)
    assert model.config.head_dim == 64
    with torch.no_grad():
        logits = model(torch.tensor([vocab.generation_prompt("a red circle")])).logits
    assert logits.shape[-1] == len(vocab)
