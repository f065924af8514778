"""The scene-world image tokenizer: its API on random weights, and the shipped weights measured by the
pixel detector on held-out scenes with a statistical bound."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from r3graph.evaluation.stats import binomial_lower_bound
from r3graph_scenes.detector import compare_scenes, detect
from r3graph_scenes.imagegen import ImageTokenizer
from r3graph_scenes.imagegen.fsq import FSQ
from r3graph_scenes.world import generate_scenes, render

# Neither the training seed (0), the development seed (999) nor the bench's held-out seed (31337).
TEST_SEED = 4242
N = 100
# The claim this file makes about the shipped weights: the detector reads reconstructions exactly at a
# rate above 90% (the issue asks 98%; bench/image_tokenizer.py measures that on 1000 scenes). With
# N = 100 the one-sided 95% Clopper-Pearson bound clears 0.90 from 96 exact scenes on: a tokenizer whose
# true rate were 90% or less gets there about 2 times in 100 (so a pass is evidence, not luck), one
# whose true rate is 98% misses it about 5 times in 100. The scenes are seeded, so the outcome is fixed
# for given weights; the odds are those of drawing an unlucky seed.
CLAIMED_RATE = 0.90


@pytest.fixture(scope="module")
def untrained() -> ImageTokenizer:
    return ImageTokenizer.untrained(seed=0)


@pytest.fixture(scope="module")
def shipped() -> ImageTokenizer:
    return ImageTokenizer.load()


@pytest.fixture(scope="module")
def held_out() -> list:
    return generate_scenes(TEST_SEED, N)


def test_shapes_dtype_and_range(untrained: ImageTokenizer) -> None:
    assert (untrained.image_size, untrained.tokens_per_image, untrained.codebook_size) == (64, 64, 1000)
    images = [render(s) for s in generate_scenes(1, 3)]
    codes = untrained.encode(images)
    assert codes.shape == (3, 64) and codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < untrained.codebook_size
    out = untrained.decode(codes)
    assert len(out) == 3 and all(i.size == (64, 64) and i.mode == "RGB" for i in out)
    assert untrained.encode([]).shape == (0, 64) and untrained.decode(np.zeros((0, 64), dtype=np.int64)) == []


def test_untrained_is_seeded(untrained: ImageTokenizer) -> None:
    images = [render(s) for s in generate_scenes(2, 4)]
    assert np.array_equal(ImageTokenizer.untrained(seed=0).encode(images), untrained.encode(images))
    assert not np.array_equal(ImageTokenizer.untrained(seed=1).encode(images), untrained.encode(images))


def test_other_sizes_and_modes_are_converted_and_box_resized(untrained: ImageTokenizer) -> None:
    scene = generate_scenes(3, 1)[0]
    big = render(scene, 256)
    expected = untrained.encode([big.resize((64, 64), Image.Resampling.BOX)])
    assert np.array_equal(untrained.encode([big.convert("RGBA")]), expected)
    assert np.array_equal(untrained.encode([big]), expected)


@pytest.mark.parametrize(("codes", "message"), [
    (np.zeros((2, 63), dtype=np.int64), r"shape \(n, 64\)"),
    (np.zeros(64, dtype=np.int64), r"shape \(n, 64\)"),
    (np.full((1, 64), 1000), r"code 1000 at image 0, position 0 is outside \[0, 1000\)"),
    (np.concatenate([np.zeros((1, 10)), -np.ones((1, 54))], axis=1).astype(np.int64),
     "code -1 at image 0, position 10"),
    (np.zeros((1, 64), dtype=np.float32), "integers"),
])
def test_bad_codes_raise_a_value_error_naming_the_problem(untrained: ImageTokenizer, codes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        untrained.decode(codes)


def test_bad_inputs_raise_type_errors(untrained: ImageTokenizer) -> None:
    image = render(generate_scenes(4, 1)[0])
    with pytest.raises(TypeError, match="sequence of images"):
        untrained.encode(image)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="PIL images"):
        untrained.encode([np.zeros((64, 64, 3))])  # type: ignore[list-item]


def test_fsq_ids_and_values_are_one_to_one() -> None:
    fsq = FSQ([8, 5, 5, 5])
    ids = torch.arange(fsq.codebook_size)
    values = fsq.from_ids(ids)
    assert torch.equal(fsq.to_ids(values), ids)
    assert values.abs().max() <= 1.0 and len({tuple(v.tolist()) for v in values}) == 1000
    with pytest.raises(ValueError, match="at least 2"):
        FSQ([8, 1])


def test_missing_weights_say_how_to_train(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="train_tokenizer"):
        ImageTokenizer.load(tmp_path)


def test_save_and_load_round_trip(untrained: ImageTokenizer, tmp_path) -> None:
    untrained.save(tmp_path)
    again = ImageTokenizer.load(tmp_path)
    images = [render(s) for s in generate_scenes(5, 2)]
    assert np.array_equal(again.encode(images), untrained.encode(images))


def test_detector_reads_reconstructions_of_held_out_scenes(shipped: ImageTokenizer, held_out: list) -> None:
    recon = shipped.decode(shipped.encode([render(s) for s in held_out]))
    exact = sum(compare_scenes(detect(r), s).exact for r, s in zip(recon, held_out, strict=True))
    assert binomial_lower_bound(exact, N) > CLAIMED_RATE, f"{exact}/{N} exact"


def test_a_second_round_trip_reads_like_the_first(shipped: ImageTokenizer, held_out: list) -> None:
    """decode(encode(.)) applied to its own output: the detector reads the second reconstruction as the
    same scene as the first (the claim and the bound of the test above), and most codes come back."""
    images = [render(s) for s in held_out]
    codes = shipped.encode(images)
    first = shipped.decode(codes)
    again = shipped.encode(first)
    second = shipped.decode(again)
    same = sum(compare_scenes(detect(b), detect(a)).exact for a, b in zip(first, second, strict=True))
    assert binomial_lower_bound(same, N) > CLAIMED_RATE, f"{same}/{N} second reconstructions read like the first"
    # Tokens are not independent draws (one image's codes move together), so this is a plain share, not
    # a bound: three quarters of the codes surviving says decoded images sit near fixed points of the
    # encoder; random weights keep about 8% (a code sits near a rounding edge and flips now and then).
    assert (again == codes).mean() > 0.75


def test_codes_do_not_depend_on_the_batch(shipped: ImageTokenizer, held_out: list) -> None:
    images = [render(s) for s in held_out[:20]]
    codes = shipped.encode(images)
    assert np.array_equal(shipped.encode(images[:7]), codes[:7])
    assert all(np.array_equal(shipped.encode([image])[0], row) for image, row in zip(images, codes, strict=True))
    assert np.array_equal(shipped.encode(images), codes)  # and encoding is deterministic
