"""Sequence formats of the unified (understanding + generation) experiment: no training, no weights."""

import random

import numpy as np
import pytest
import torch

from r3graph_scenes.imagegen.data import GenPair
from r3graph_scenes.imagegen.train import IGNORE, collate
from r3graph_scenes.imagegen.unified_data import (
    PASS,
    UndItem,
    UnifiedVocab,
    canonical,
    und_sequence,
    understanding_items,
)
from r3graph_scenes.imagegen.unified_train import batch_plan
from r3graph_scenes.imagegen.vocab import BOI, BOS, EOI, EOS, TOKENS_PER_IMAGE, UNK, Vocab
from r3graph_scenes.language import caption
from r3graph_scenes.questions import questions_for
from r3graph_scenes.world import generate_scenes

K = 1000


@pytest.fixture(scope="module")
def vocab() -> UnifiedVocab:
    return UnifiedVocab(K)


@pytest.fixture(scope="module")
def codes() -> np.ndarray:
    return np.random.default_rng(0).integers(0, K, size=(3, TOKENS_PER_IMAGE))


def test_shipped_ids_unchanged(vocab):
    # The shipped generator's weights index the base vocabulary: every id must keep its token.
    base = Vocab(K)
    assert vocab.tokens[:len(base)] == base.tokens
    assert vocab.code_offset == base.code_offset
    assert vocab.und >= base.code_offset + K and vocab.sep >= base.code_offset + K
    assert vocab.generation_prompt("a red circle .") == base.generation_prompt("a red circle .")


def _answer_words(vocab, seq, plen):
    labels = collate([seq], [plen])["labels"][0]
    kept = [int(t) for t in labels if t != IGNORE]
    return kept, vocab.decode_words(kept)


def test_caption_round_trip_and_labels(vocab, codes):
    scene = generate_scenes(3, 1)[0]
    item = UndItem("caption", 1, "", caption(scene))
    seq, plen = und_sequence(vocab, codes, item)
    assert seq[:3] == [BOS, vocab.und, BOI]
    assert vocab.codes(seq[3:3 + TOKENS_PER_IMAGE]) == codes[1].tolist()
    assert seq[3 + TOKENS_PER_IMAGE] == EOI and seq[plen - 1] == vocab.sep
    assert vocab.tokens[seq[plen - 2]] == "caption"
    kept, text = _answer_words(vocab, seq, plen)
    assert kept == seq[plen:] and kept[-1] == EOS  # the loss covers the caption and its <eos>, nothing else
    assert text == canonical(caption(scene)) and UNK not in kept


def test_vqa_round_trip_every_family(vocab, codes):
    seen = set()
    rng = random.Random(0)
    for scene in generate_scenes(5, 40):
        for q in questions_for(scene, rng):
            seq, plen = und_sequence(vocab, codes, UndItem("vqa", 0, q.text, q.answer, q.family))
            assert UNK not in seq, q.text  # every question word is in the vocabulary
            assert vocab.decode_words(seq[3 + TOKENS_PER_IMAGE + 1:plen - 1]) == canonical(q.text)
            kept, text = _answer_words(vocab, seq, plen)
            assert text == q.answer and len(kept) == 2
            seen.add(q.family)
    assert seen == {"existence", "colour", "shape", "count", "relation"}


def test_judge_items_pass_and_edit(vocab, codes):
    scenes = generate_scenes(7, 2)
    gen = [GenPair(caption(s), s) for s in scenes]
    items = understanding_items(gen, [], seed=0)
    assert [it.answer for it in items["judge"]] == [PASS, PASS]
    seq, plen = und_sequence(vocab, codes, items["judge"][0])
    assert vocab.tokens[seq[3 + TOKENS_PER_IMAGE + 1]] == "judge"
    assert _answer_words(vocab, seq, plen)[1] == PASS


def test_bad_task_and_words_only(vocab, codes):
    with pytest.raises(ValueError, match="unknown understanding task"):
        und_sequence(vocab, codes, UndItem("paint", 0, "", "x"))
    assert vocab.is_word(EOS) and vocab.is_word(vocab.ids["yes"])
    assert not vocab.is_word(vocab.code_offset) and not vocab.is_word(vocab.sep) and not vocab.is_word(BOS)


def test_batch_plan():
    assert batch_plan("u", 32) == {"caption": 10, "judge": 8, "vqa": 14, "edit": 0, "gen": 0}
    assert batch_plan("g", 32) == {"caption": 0, "judge": 0, "vqa": 0, "edit": 11, "gen": 21}
    ug = batch_plan("ug", 32)
    assert sum(ug.values()) == 32 and ug["caption"] + ug["judge"] + ug["vqa"] == 16
    with pytest.raises(ValueError):
        batch_plan("x", 32)


def test_words_only_masks_codes(vocab):
    from r3graph_scenes.imagegen.unified_eval import WordsOnly

    scores = torch.zeros(1, len(vocab))
    scores[0, vocab.code_offset] = 10.0  # a code would win greedy decoding without the mask
    out = WordsOnly(vocab)(torch.zeros(1, 1, dtype=torch.long), scores)
    assert int(out.argmax()) != vocab.code_offset and vocab.is_word(int(out.argmax()))


def test_eval_sides_follow_the_training_plan(tmp_path):
    import json

    from r3graph_scenes.imagegen.unified_eval import sides

    for mode, expected in (("u", (True, False)), ("g", (False, True)), ("ug", (True, True))):
        d = tmp_path / mode
        d.mkdir()
        (d / "training_log.json").write_text(json.dumps({"plan": batch_plan(mode, 32)}))
        assert sides(str(d), "auto") == expected
    assert sides(str(tmp_path / "u"), "both") == (True, True)
