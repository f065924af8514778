"""Output mode "image": the same graph generates an image, judges it and edits it.

The generator is the real stand-in server (``PaintServer``) reached over HTTP on 127.0.0.1 through
the real vllm-omni client; the judge is a scripted chat model that reads the truth of what was
painted from the PNG (an oracle, so a failure here is the graph's, not a model's). The real
scenes-vlm judging through vLLM is in tests/serving/test_image_mode_engine.py.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Iterator

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from r3graph import R3Context, build_r3_graph
from r3graph.errors import R3ConfigError, R3Error, R3InputError, R3ModelError
from r3graph.image_generation import ImageBackend, ImageParams
from r3graph.serving.image_client import OmniImageClient
from r3graph_scenes.image_edits import image_edit
from r3graph_scenes.language import caption
from r3graph_scenes.metrics import score_caption
from r3graph_scenes.paint_server import MODEL_ID, PaintServer
from r3graph_scenes.painter import decode_scene, layout
from r3graph_scenes.questions import answer_yes_no, yes_no_questions_for_caption
from tests.fakes import ScriptedChatModel

PROMPT = "a large red circle and a small blue square . the red circle is left of the blue square ."
SENTINEL = "no further edit needed"


def painted(png: bytes) -> str:
    scene = decode_scene(png)
    assert scene is not None
    return caption(scene)


def satisfies(png: bytes, prompt: str = PROMPT) -> bool:
    scene = decode_scene(png)
    assert scene is not None
    return score_caption(prompt, scene).exact_match


def oracle(edit_for: Callable[[str, bytes], str | None] | None = None) -> ScriptedChatModel:
    """A judge for the scenes pack's image templates that answers from the painted scene's truth."""

    def true_edit(prompt: str, png: bytes) -> str | None:
        scene = decode_scene(png)
        assert scene is not None
        return image_edit(prompt, scene, layout(prompt, random.Random(0)))

    edit = edit_for or true_edit

    def script(text: str, images: list[bytes]) -> str:
        assert len(images) == 1, "image mode shows the judge exactly the generated image"
        if text.endswith("Judge the image."):
            prompt = text.split("\n")[0].removeprefix("Prompt: ")
            return json.dumps({"edit": edit(prompt, images[0]) or SENTINEL})
        if text.endswith("Write one edit for the image."):
            prompt = text.split("\n")[0].removeprefix("Prompt: ")
            return edit(prompt, images[0]) or SENTINEL
        if "questions that check the draft" in text:
            return "\n".join(yes_no_questions_for_caption(text.split("\n")[0].removeprefix("Draft: "))[:3])
        if text.startswith("Question: "):
            scene = decode_scene(images[0])
            assert scene is not None
            return answer_yes_no(text.removeprefix("Question: "), scene)
        raise AssertionError(f"unexpected prompt: {text!r}")

    return ScriptedChatModel(script=script, sees_images=True)


@pytest.fixture
def wrong_colour() -> Iterator[PaintServer]:
    with PaintServer(error_rate=1.0, kinds=("wrong_colour",), seed=3) as server:
        yield server


def image_graph(model: ScriptedChatModel, backend: ImageBackend, **kwargs: object):  # type: ignore[no-untyped-def]
    return build_r3_graph(model, pack="scenes", image_backend=backend, **kwargs).compile()  # type: ignore[arg-type]


def context(**overrides: object) -> R3Context:
    values: dict[str, object] = {"output": "image", "reflect": "judge", "max_rounds": 3, "image": ImageParams(seed=7)}
    return R3Context(**(values | overrides))


async def test_the_judge_catches_a_wrong_colour_and_the_edit_fixes_it(wrong_colour: PaintServer) -> None:
    async with OmniImageClient(wrong_colour.url) as client:
        result = await image_graph(oracle(), client).ainvoke({"instruction": PROMPT}, context=context())
    first, second = result["rounds"]
    assert first.image is not None and not satisfies(first.image), painted(first.image)
    assert first.reflection.verdict == "revise" and first.reflection.critique.startswith("change the ")
    assert second.draft == first.reflection.critique  # refine applied the judge's edit as written
    assert second.image is not None and satisfies(second.image)
    assert result["image"] == second.image and result["image"].startswith(b"\x89PNG")
    assert result["stop_reason"] == "passed"
    assert wrong_colour.counts["generations"] == 1 and wrong_colour.counts["edits"] == 1
    assert result["usage"].image_calls == 2 and result["usage"].calls == 2  # two judge calls


async def test_self_questions_find_the_mistake_and_the_model_writes_the_edit(wrong_colour: PaintServer) -> None:
    model = oracle()
    async with OmniImageClient(wrong_colour.url) as client:
        result = await image_graph(model, client).ainvoke(
            {"instruction": PROMPT}, context=context(reflect="self_questions")
        )
    first = result["rounds"][0]
    assert any(f.consistent is False for f in first.reflection.findings)
    assert result["rounds"][1].draft.startswith("change the ")  # written by the "refine" (edit) stage
    assert satisfies(result["image"]) and result["stop_reason"] == "passed"
    prompts = [c["prompt"] for c in model.calls]
    assert any(p.endswith("Write one edit for the image.") for p in prompts)
    assert all(PROMPT in p for p in prompts if not p.startswith("Question: "))  # checks are of the prompt


async def test_the_sentinel_stops_the_loop_before_any_edit() -> None:
    with PaintServer(error_rate=0.0) as server:
        async with OmniImageClient(server.url) as client:
            result = await image_graph(oracle(), client).ainvoke({"instruction": PROMPT}, context=context())
        assert server.counts["edits"] == 0
    assert len(result["rounds"]) == 1 and result["stop_reason"] == "passed"
    assert result["rounds"][0].reflection.verdict == "pass" and satisfies(result["image"])


@pytest.mark.parametrize("max_rounds", [0, 1, 3])
async def test_depth_is_set_per_request(max_rounds: int) -> None:
    """A judge that is never satisfied (it flips the circle's colour every time) runs to the depth."""
    flips = {"red": "green", "green": "red"}

    def never_satisfied(prompt: str, png: bytes) -> str:
        scene = decode_scene(png)
        assert scene is not None
        now = next(o.colour for o in scene.objects if o.shape == "circle")
        return f"change the {now} circle to a large {flips[now]} circle"

    graph = None
    with PaintServer(error_rate=0.0) as server:
        async with OmniImageClient(server.url) as client:
            graph = image_graph(oracle(never_satisfied), client)
            result = await graph.ainvoke({"instruction": PROMPT}, context=context(max_rounds=max_rounds))
        assert server.counts["edits"] == max_rounds
    assert len(result["rounds"]) == max_rounds + 1
    assert result["stop_reason"] == ("one_shot" if max_rounds == 0 else "max_rounds")
    images = [r.image for r in result["rounds"]]
    assert len(set(images)) == min(len(images), 2)  # the colour flips back and forth


async def test_an_edit_that_changes_nothing_ends_the_loop_as_unchanged() -> None:
    """An instruction the editor cannot apply leaves the image as it was: judging it again would
    repeat the verdict, so the loop stops."""
    with PaintServer(error_rate=0.0) as server:
        async with OmniImageClient(server.url) as client:
            graph = image_graph(oracle(lambda prompt, png: "make it more beautiful"), client)
            result = await graph.ainvoke({"instruction": PROMPT}, context=context())
    assert len(result["rounds"]) == 2 and result["rounds"][0].image == result["rounds"][1].image
    assert result["stop_reason"] == "unchanged"


async def test_generation_and_edit_spans_say_their_output_is_an_image(
    wrong_colour: PaintServer, spans: InMemorySpanExporter
) -> None:
    # the served model's name: the stand-in, like vllm-omni, refuses a request naming another model
    async with OmniImageClient(wrong_colour.url, model=MODEL_ID) as client:
        await image_graph(oracle(), client).ainvoke({"instruction": PROMPT}, context=context())
    image_spans = [s for s in spans.get_finished_spans() if s.name.startswith("images.")]
    assert [s.name for s in image_spans] == [f"images.generate {MODEL_ID}", f"images.edit {MODEL_ID}"]
    for span in image_spans:
        attributes = dict(span.attributes or {})
        assert attributes["gen_ai.output.type"] == "image" and attributes["r3.image.seed"] == 7
        assert attributes["r3.image.bytes"] > 0 and "r3.image.prompt" not in attributes  # content is opt-in
    chat_spans = [s for s in spans.get_finished_spans() if s.name.startswith("chat ")]
    assert chat_spans and all(dict(s.attributes or {})["r3.images"] == 1 for s in chat_spans)


async def test_a_failed_edit_keeps_the_first_image_in_the_error(wrong_colour: PaintServer) -> None:
    class BrokenEditor:
        def __init__(self, inner: OmniImageClient) -> None:
            self.inner, self.model = inner, "broken-editor"

        async def agenerate(self, prompt: str, params: ImageParams) -> bytes:
            return await self.inner.agenerate(prompt, params)

        async def aedit(self, image: bytes, instruction: str, params: ImageParams) -> bytes:
            raise R3ModelError("the editor is down", transient=False)

    async with OmniImageClient(wrong_colour.url) as client:
        with pytest.raises(R3Error) as err:
            await image_graph(oracle(), BrokenEditor(client)).ainvoke({"instruction": PROMPT}, context=context())
    assert err.value.stage == "refine" and err.value.best_image is not None
    assert decode_scene(err.value.best_image) is not None and len(err.value.rounds) == 1


async def test_no_reflect_regenerates_a_new_sample_not_the_same_seed(wrong_colour: PaintServer) -> None:
    seeds: list[int | None] = []

    class Recording:
        def __init__(self, inner: OmniImageClient) -> None:
            self.inner, self.model = inner, inner.model

        async def agenerate(self, prompt: str, params: ImageParams) -> bytes:
            seeds.append(params.seed)
            return await self.inner.agenerate(prompt, params)

        async def aedit(self, image: bytes, instruction: str, params: ImageParams) -> bytes:
            raise AssertionError("no reflect: nothing to edit")

    async with OmniImageClient(wrong_colour.url) as client:
        result = await image_graph(oracle(), Recording(client)).ainvoke(
            {"instruction": PROMPT}, context=context(reflect="none", max_rounds=2))
    assert seeds == [7, 8, 9] and len(result["rounds"]) == 3  # each round its own seed: a new sample


async def test_bad_requests_fail_before_any_call(wrong_colour: PaintServer) -> None:
    model = oracle()
    async with OmniImageClient(wrong_colour.url) as client:
        with pytest.raises(R3ConfigError, match="image_backend="):
            await build_r3_graph(model, pack="scenes").compile().ainvoke({"instruction": PROMPT}, context=context())
        with pytest.raises(R3InputError, match="pass no images"):
            await image_graph(model, client).ainvoke({"instruction": PROMPT, "images": ["x.png"]}, context=context())
        with pytest.raises(R3ConfigError, match="plan"):  # the scenes pack has no plan template
            await image_graph(model, client).ainvoke(
                {"instruction": PROMPT}, context=context(image=ImageParams(plan=True))
            )
    with pytest.raises(R3ConfigError, match="size"):
        R3Context(output="image", image={"size": "big"})
    with pytest.raises(R3ConfigError, match="image_backend must"):
        build_r3_graph(model, image_backend=object())  # type: ignore[arg-type]
    assert model.calls == [] and wrong_colour.counts["generations"] == 0


async def test_plan_writes_the_generation_prompt_with_the_default_pack() -> None:
    planned = "a large red circle ."

    def script(text: str) -> str:
        if text.startswith("Rewrite this request as one detailed prompt"):
            return planned
        assert "This image was generated for the prompt: draw a red ball" in text
        return json.dumps({"edit": SENTINEL})

    with PaintServer(error_rate=0.0) as server:
        async with OmniImageClient(server.url) as client:
            graph = build_r3_graph(ScriptedChatModel(script=script), image_backend=client).compile()
            result = await graph.ainvoke(
                {"instruction": "draw a red ball"}, context=context(image=ImageParams(plan=True, size="128x128"))
            )
    assert result["rounds"][0].draft == planned and satisfies(result["image"], planned)
    assert result["image"][16:24] == (128).to_bytes(4, "big") * 2  # PNG IHDR width, height


async def test_images_survive_a_checkpointer(wrong_colour: PaintServer) -> None:
    async with OmniImageClient(wrong_colour.url) as client:
        graph = build_r3_graph(oracle(), pack="scenes", image_backend=client).compile(checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": "image-1"}}
        result = await graph.ainvoke({"instruction": PROMPT}, config, context=context())
        stored = (await graph.aget_state(config)).values
    assert [r.image for r in stored["rounds"]] == [r.image for r in result["rounds"]]
    assert stored["image"] == result["image"]
    for r in result["rounds"]:  # JSON (trajectory export, HTTP) carries the PNG as base64
        assert type(r).model_validate_json(r.model_dump_json()).image == r.image


async def test_a_slow_generator_is_cut_by_the_call_timeout_and_retried(spans: InMemorySpanExporter) -> None:
    """Image calls go through the same timeout path as chat calls: call_timeout_s cuts a hung
    generation, the RetryPolicy retries it (transient), then the typed error says which stage."""
    from langgraph.types import RetryPolicy

    with PaintServer(error_rate=0.0, delay_s=5.0) as server:
        async with OmniImageClient(server.url) as client:
            graph = build_r3_graph(oracle(), pack="scenes", image_backend=client,
                                   retry_policy=RetryPolicy(max_attempts=2, initial_interval=0.05)).compile()
            with pytest.raises(R3ModelError, match="timed out") as err:
                await graph.ainvoke({"instruction": PROMPT}, context=context(call_timeout_s=0.5))
            # On a loaded machine the cut request may reach the server's handler after the client
            # gave up on it: wait for it to land rather than read the count at once.
            for _ in range(100):
                if server.counts["generations"] >= 2:
                    break
                await asyncio.sleep(0.05)
        assert server.counts["generations"] == 2  # two attempts reached it; neither reply was waited for
    assert err.value.transient and err.value.stage == "reason" and err.value.best_image is None
    generate_spans = [s for s in spans.get_finished_spans() if s.name.startswith("images.generate")]
    assert len(generate_spans) == 2 and all(not s.status.is_ok for s in generate_spans)


def chatty(model: ScriptedChatModel) -> ScriptedChatModel:
    """The oracle written the way a real VLM answers: reasoning first, markdown, closing remarks."""
    terse = model.script

    def script(text: str, images: list[bytes]) -> str:
        reply = terse(text, images)
        if text.endswith("Judge the image."):
            edit = json.loads(reply)["edit"]
            return f"<think>\nCompare each object with the prompt.\n</think>\n\n**Edit:** {edit}\n\nThis fixes it."
        if text.endswith("Write one edit for the image."):
            return f"Got it, the checks say what is wrong.\n</think>\n\n{reply.capitalize()}. I hope this helps!"
        return reply

    return ScriptedChatModel(script=script, sees_images=True)


@pytest.mark.parametrize("reflect", ["judge", "self_questions"])
async def test_the_image_editor_gets_the_edit_as_read_not_the_models_remarks(
    wrong_colour: PaintServer, reflect: str
) -> None:
    async with OmniImageClient(wrong_colour.url) as client:
        result = await image_graph(chatty(oracle()), client).ainvoke(
            {"instruction": PROMPT}, context=context(reflect=reflect))
    edit = result["rounds"][1].draft
    assert edit.lower().startswith("change the ") and "think" not in edit and "hope" not in edit.lower()
    assert "fixes it" not in edit and satisfies(result["image"]) and result["stop_reason"] == "passed"
