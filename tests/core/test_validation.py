"""Every bad input or setting is a clear, typed error before any model call."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from PIL import Image

from r3graph import R3ConfigError, R3Context, R3InputError, R3ValidationError, build_r3_graph, load_pack
from tests.fakes import ScriptedChatModel, png_bytes, png_data_url


def model() -> ScriptedChatModel:
    return ScriptedChatModel(script=lambda prompt: "unused")


async def invoke(inputs: dict[str, Any], context: Any = None, pack: str = "default") -> ScriptedChatModel:
    chat = model()
    graph = build_r3_graph(chat, pack=pack).compile()
    try:
        await graph.ainvoke(inputs, context=context)
    finally:
        assert chat.calls == []  # nothing reached the model
    return chat


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ({"max_rounds": -1}, "max_rounds"),
        ({"max_rounds": 10_000}, "max_rounds"),
        ({"max_rounds": "three"}, "max_rounds"),
        ({"select": "worst"}, "select"),
        ({"num_questions": 0}, "num_questions"),
        ({"reflect_passes": 9}, "reflect_passes"),
        ({"sampling": {"reason": {"temperature": 5}}}, "sampling.reason.temperature"),
        ({"sampling": {"dream": {}}}, "sampling.dream"),
        ({"call_timeout_s": 0}, "call_timeout_s"),
        ({"max_round": 2}, "max_round"),
    ],
)
def test_bad_context_fields_name_the_field(fields: dict[str, Any], names: str) -> None:
    with pytest.raises(R3ConfigError) as caught:
        R3Context(**fields)
    assert names in str(caught.value)
    assert isinstance(caught.value, ValueError)


async def test_bad_dict_context_through_the_graph_is_typed() -> None:
    with pytest.raises(R3ConfigError, match="max_rounds"):
        await invoke({"instruction": "x", "images": [png_bytes()]}, context={"max_rounds": -2})


@pytest.mark.parametrize(
    ("context", "message"),
    [
        (R3Context(reflect="telepathy"), "unknown reflect strategy 'telepathy'"),
        (R3Context(reflect=42), "reflect must be a strategy name"),
        (R3Context(pack="klingon"), "unknown prompt pack 'klingon'"),
    ],
)
async def test_unknown_strategy_or_pack_fails_before_any_call(context: R3Context, message: str) -> None:
    with pytest.raises(R3ConfigError, match=message):
        await invoke({"instruction": "x", "images": [png_bytes()]}, context=context)


def _png_of(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "blue").save(buffer, format="PNG")
    return buffer.getvalue()


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(buffer, format="GIF")
    return buffer.getvalue()


BAD_INPUTS: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("instruction missing", {"images": [png_bytes()]}, {}, "instruction must be a non-empty string"),
    ("instruction not a string", {"instruction": 7, "images": [png_bytes()]}, {}, "non-empty string, got int"),
    ("instruction blank", {"instruction": "  ", "images": [png_bytes()]}, {}, "non-empty string"),
    ("instruction absurdly long", {"instruction": "x" * 9000, "images": [png_bytes()]}, {}, "limit is 8000"),
    ("images not a list", {"instruction": "x", "images": png_bytes()}, {}, "images must be a list"),
    ("no images", {"instruction": "x", "images": []}, {}, "1 to 8 images"),
    ("too many images", {"instruction": "x", "images": [png_bytes()] * 9}, {}, "1 to 8 images"),
    ("corrupt bytes", {"instruction": "x", "images": [b"not an image at all"]}, {}, "not a readable image"),
    ("truncated png", {"instruction": "x", "images": [_png_of((64, 64))[:60]]}, {}, "not a readable image"),
    ("zero bytes", {"instruction": "x", "images": [b""]}, {}, "empty"),
    ("missing file", {"instruction": "x", "images": ["/nonexistent/cat.png"]}, {}, "no such image file"),
    ("unsupported type", {"instruction": "x", "images": [3.14]}, {}, "unsupported image type float"),
    ("data url wrong mime", {"instruction": "x", "images": ["data:text/plain;base64,aGk="]}, {}, "MIME type"),
    ("data url mime mismatch", {"instruction": "x",
     "images": ["data:image/jpeg;base64," + base64.b64encode(png_bytes()).decode()]}, {}, "says image/jpeg"),
    ("data url not base64", {"instruction": "x", "images": ["data:image/png,rawbytes"]}, {}, "base64"),
    ("data url bad payload", {"instruction": "x", "images": ["data:image/png;base64,@@@@"]}, {}, "invalid"),
    ("remote url off", {"instruction": "x", "images": ["https://example.com/a.png"]}, {}, "remote image URLs are off"),
    ("ftp scheme", {"instruction": "x", "images": ["ftp://example.com/a.png"]}, {}, "unsupported URL scheme"),
    ("too many pixels", {"instruction": "x", "images": [_png_of((100, 100))]}, {"max_image_pixels": 5000},
     "limit is 5000"),
    ("too many bytes", {"instruction": "x", "images": [_png_of((100, 100))]}, {"max_image_bytes": 10},
     "limit is 10"),
    ("unsupported format", {"instruction": "x", "images": [b"GIF89a" + b"\x00" * 10]}, {}, "not a readable image"),
]


@pytest.mark.parametrize(("case", "inputs", "context", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
async def test_bad_input_is_a_clear_error_before_any_model_call(
    case: str, inputs: dict[str, Any], context: dict[str, Any], message: str
) -> None:
    with pytest.raises(R3InputError, match=message) as caught:
        await invoke(inputs, context=R3Context(**context))
    assert isinstance(caught.value, R3ValidationError)


async def test_accepted_image_forms_normalise_to_the_same_data_url(tmp_path: Any) -> None:
    from r3graph.images import normalise_image

    raw = png_bytes("green")
    path = tmp_path / "img.png"
    path.write_bytes(raw)
    limits = {"max_bytes": 2**20, "max_pixels": 2**20}
    forms = [raw, str(path), path, "data:image/png;base64," + base64.b64encode(raw).decode()]
    urls = {await normalise_image(form, **limits) for form in forms}
    assert len(urls) == 1
    pil = Image.open(io.BytesIO(raw))
    assert (await normalise_image(pil, **limits)).startswith("data:image/png;base64,")
    gif = await normalise_image(_gif(), **limits)  # readable but not passed through: re-encoded as PNG
    assert gif.startswith("data:image/png;base64,")
    assert png_data_url("red").startswith("data:image/png")


def test_bad_prompt_packs() -> None:
    good = load_pack("default").model_dump()
    with pytest.raises(R3ConfigError, match="unknown placeholder"):
        load_pack({**good, "reason": "{instrucion}"})
    with pytest.raises(R3ConfigError, match="malformed"):
        load_pack({**good, "reason": "{instruction"})
    with pytest.raises(R3ConfigError, match="unknown prompt pack"):
        load_pack("nope")
    assert load_pack(good).render("reason", instruction="{braces} stay") == "{braces} stay"


def test_model_must_be_a_chat_model() -> None:
    with pytest.raises(R3ConfigError, match="BaseChatModel"):
        build_r3_graph(object())  # type: ignore[arg-type]


async def test_untrusted_paths_and_private_hosts(tmp_path: Any) -> None:
    inside = tmp_path / "allowed"
    inside.mkdir()
    (inside / "ok.png").write_bytes(png_bytes())
    outside = tmp_path / "secret.png"
    outside.write_bytes(png_bytes())
    (inside / "link.png").symlink_to(outside)
    root = {"image_root": str(inside)}
    cases = [
        ({"images": [str(outside)]}, root, "outside the allowed image folder"),
        ({"images": [str(inside / ".." / "secret.png")]}, root, "outside the allowed image folder"),
        ({"images": [str(inside / "link.png")]}, root, "outside the allowed image folder"),
        ({"images": [str(inside / "ok.png")]}, {"allow_file_paths": False}, "file paths are not accepted"),
        ({"images": ["http://127.0.0.1:9/x.png"]}, {"allow_remote_images": True}, "non-public host '127.0.0.1'"),
        ({"images": ["http://169.254.169.254/x.png"]}, {"allow_remote_images": True}, "non-public host"),
        ({"images": ["http://10.1.2.3/x.png"]}, {"allow_remote_images": True}, "non-public host"),
        ({"images": ["http://[::1]/x.png"]}, {"allow_remote_images": True}, "non-public host"),
    ]
    for inputs, context, message in cases:
        with pytest.raises(R3InputError, match=message):
            await invoke({"instruction": "x", **inputs}, context=R3Context(**context))
    chat = ScriptedChatModel(script=lambda prompt: "a square")
    graph = build_r3_graph(chat).compile()
    ok = await graph.ainvoke({"instruction": "x", "images": [str(inside / "ok.png")]},
                             context=R3Context(max_rounds=0, **root))
    assert ok["output"] == "a square"


async def test_a_request_can_name_a_bundled_pack_but_not_a_file(tmp_path: Any) -> None:
    from r3graph.prompts import load_named_pack

    pack_file = tmp_path / "mine.json"
    pack_file.write_text(load_pack("default").model_dump_json())
    with pytest.raises(R3ConfigError, match="unknown prompt pack"):
        await invoke({"instruction": "x", "images": [png_bytes()]}, context=R3Context(pack=str(pack_file)))
    assert load_named_pack("scenes") is load_named_pack("scenes")  # parsed once, not per stage
    chat = ScriptedChatModel(script=lambda prompt: prompt)
    graph = build_r3_graph(chat).compile()  # default pack on the graph, scenes for this request
    result = await graph.ainvoke({"instruction": "x", "images": [png_bytes()]},
                                 context=R3Context(max_rounds=0, pack="scenes"))
    assert result["output"] == load_pack("scenes").reason
