"""The image generator: vocabulary, prompt formats, model directory, training step, shipped weights."""

from __future__ import annotations

import json
import random

import pytest
import torch
from transformers import AutoTokenizer, LlamaForCausalLM

from r3graph_scenes.geneval_prompts import geneval_prompts
from r3graph_scenes.imagegen.model import build_untrained, load
from r3graph_scenes.imagegen.vocab import BOI, BOS, EDIT, EDIT_PROMPT, EOI, GEN, GENERATION_PROMPT, UNK, Vocab
from r3graph_scenes.plugin import SCENES_IMAGEGEN_DIR

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


def test_training_data_holds_out_the_benchmark_content():
    from r3graph_scenes.imagegen.data import DataConfig, generation_pairs, held_out_prompts, with_sizes

    held = held_out_prompts()
    pairs = generation_pairs(DataConfig(captions=50, geneval_layouts=1))
    # With sizes dropped, no training prompt is a held-out prompt: neither the string nor its sized variant.
    unsized = {" ".join(w for w in p.prompt.split() if w not in ("small", "large")).replace("a orange", "an orange")
               for p in pairs}
    assert not unsized & held
    sized = with_sizes("a photo of two red circles", random.Random(0), {"red circle": "small"})
    assert sized == "a photo of two small red circles"


def test_a_training_step_lowers_the_target_loss():
    from r3graph_scenes.imagegen.model import llama_config
    from r3graph_scenes.imagegen.train import collate, target_loss

    vocab, rng = Vocab(K), random.Random(0)
    torch.manual_seed(0)
    model = LlamaForCausalLM(llama_config(len(vocab), hidden=64, heads=1, layers=1, intermediate=128))
    seqs, plens = [], []
    for text in ("a red circle", "two blue squares", "a photo of a green star"):
        prompt = vocab.generation_prompt(text)
        seqs.append(prompt + vocab.target([rng.randrange(K) for _ in range(64)]))
        plens.append(len(prompt))
    batch = collate(seqs, plens)
    assert (batch["labels"][0, :plens[0]] == -100).all() and batch["labels"][0, plens[0]] == seqs[0][plens[0]]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = float(target_loss(model, batch).detach())
    for _ in range(15):
        opt.zero_grad()
        target_loss(model, batch).backward()
        opt.step()
    assert float(target_loss(model, batch).detach()) < first - 0.5


def test_training_steps_are_bit_identical_on_one_and_two_threads():
    """`make train` hands the generator a second core mid-run; the shipped weights do not depend on when
    only because a step computes the same bits on 1 and 2 threads (bf16 autocast, as trained)."""
    from r3graph_scenes.imagegen.model import llama_config
    from r3graph_scenes.imagegen.train import collate, target_loss

    vocab, rng = Vocab(K), random.Random(0)
    seqs, plens = [], []
    for text in ("a red circle", "two blue squares", "a photo of a green star", "a yellow square"):
        prompt = vocab.generation_prompt(text)
        seqs.append(prompt + vocab.target([rng.randrange(K) for _ in range(64)]))
        plens.append(len(prompt))
    batch = collate(seqs, plens)
    before = torch.get_num_threads()
    weights = []
    try:
        for threads in (1, 2, 1):
            torch.set_num_threads(threads)
            torch.manual_seed(0)
            model = LlamaForCausalLM(llama_config(len(vocab), hidden=256, heads=4, layers=1, intermediate=512))
            opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
            for _ in range(4):
                opt.zero_grad()
                target_loss(model, batch, bf16=True).backward()
                opt.step()
            weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    finally:
        torch.set_num_threads(before)
    for other in weights[1:]:
        assert all(torch.equal(weights[0][k], other[k]) for k in weights[0])


SHIPPED = SCENES_IMAGEGEN_DIR
# An untrained model of the same architecture got 0 of 300 held-out prompts exact, greedy and sampled
# (MODEL_CARD.md, "untrained_baseline" in training_log.json): a one-sided 95% upper bound of 1.0% on
# chance. A model whose one-sided 95% Clopper-Pearson lower bound on N prompts clears CHANCE is better
# than the untrained one. Sampled, as the image server decodes: the shipped model is weak (5.7% sampled
# on 300, 1.0% greedy), and its greedy figure is the fragile one (0.063 -> 0.010 between retrains).
# N is the card's held-out set, whole: the claim is the card's (on its first 200 prompts, 5 are exact,
# a bound of 0.0099, which does not clear chance: 300 prompts are what it takes to tell).
CHANCE = 0.01
N_SHIPPED = 300


@pytest.mark.skipif(not (SHIPPED / "model.safetensors").is_file() or not (SHIPPED / "tokenizer").is_dir(),
                    reason="no trained scenes-imagegen weights shipped yet")
def test_shipped_generator_beats_chance_on_held_out_prompts():
    from r3graph.evaluation.stats import binomial_lower_bound
    from r3graph_scenes.detector import detect
    from r3graph_scenes.evaluation.image_scores import score_spec
    from r3graph_scenes.imagegen.evaluate_generator import generate_codes
    from r3graph_scenes.imagegen.fsq import ImageTokenizer

    model, vocab, meta = load(SHIPPED)
    tokenizer = ImageTokenizer.load(SHIPPED / meta["image_tokenizer_path"])
    cases = geneval_prompts(N_SHIPPED)
    codes = generate_codes(model, vocab, [vocab.generation_prompt(c.prompt) for c in cases], sample=True)
    k = sum(score_spec(c.spec, detect(img)).exact for c, img in zip(cases, tokenizer.decode(codes), strict=True))
    assert binomial_lower_bound(k, N_SHIPPED) > CHANCE, f"{k}/{N_SHIPPED} exact"
