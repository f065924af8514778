"""Structured verdicts through real vLLM: yes/no as a constrained choice, question lists as a JSON
array and the judge as a JSON object, on the in-process engine and over the HTTP server; and the
chat-template switches (``chat_template_kwargs``) reaching the template."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.outputs import LLMResult

from r3graph.reflect.verdicts import STAGE_SCHEMAS
from tests.helpers import EXAMPLE_IMAGE

CONSTRAINED = {"answer", "verify", "questions", "claims", "judge"}


class Replies(AsyncCallbackHandler):
    """Every chat call's request kwargs and reply, as LangChain reports them."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.replies: list[tuple[str, str | None]] = []

    async def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.requests.append(kwargs.get("invocation_params") or {})

    async def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        generation = response.generations[0][0]
        meta = getattr(generation, "message", None)
        finish = (getattr(meta, "response_metadata", None) or {}).get("finish_reason")
        self.replies.append((generation.text, finish))


async def _structured_run(model: Any, reflect: str) -> tuple[dict[str, Any], Replies]:
    from r3graph import R3Context, build_r3_graph

    replies = Replies()
    graph = build_r3_graph(model, pack="default").compile()
    result = await graph.ainvoke(
        {"instruction": "Describe the image.", "images": [str(EXAMPLE_IMAGE)]},
        {"callbacks": [replies]},
        context=R3Context(max_rounds=1, reflect=reflect, num_questions=2, structured_judge=True,
                          sampling={"reason": {"max_tokens": 48}, "refine": {"max_tokens": 48}}),
    )
    return result, replies


def _check_constrained(result: dict[str, Any], replies: Replies) -> None:
    # ChatOpenAI carries it in the request body (extra_body), the engine as a kwarg.
    formats = [req.get("response_format") or (req.get("extra_body") or {}).get("response_format")
               for req in replies.requests]
    constrained = [(rf["json_schema"]["name"], reply) for rf, reply in zip(formats, replies.replies, strict=True)
                   if rf is not None]
    assert constrained, "no stage asked for structured output"
    names = {schema.__name__ for stage, schema in STAGE_SCHEMAS.items() if stage in CONSTRAINED}
    for name, (text, finish) in constrained:
        assert name in names
        if finish == "length":
            continue  # cut by max_tokens: the reader recovers what it can (tested on the corpus)
        schema = next(s for s in STAGE_SCHEMAS.values() if s.__name__ == name)
        schema.model_validate(json.loads(text))  # the grammar held: valid JSON of the stage's schema
    for round_ in result["rounds"]:
        reflection = round_.reflection
        if reflection is None:
            continue
        for finding in reflection.findings:  # a constrained yes/no is never unclear
            assert finding.consistent is not None


@pytest.mark.engine
@pytest.mark.parametrize("reflect", ["self_questions", "judge"])
async def test_structured_verdicts_on_the_engine(engine: Any, reflect: str) -> None:
    result, replies = await _structured_run(engine, reflect)
    _check_constrained(result, replies)


@pytest.mark.engine
async def test_chat_template_kwargs_reach_the_engine_template(engine: Any) -> None:
    from langchain_core.messages import HumanMessage

    from tests.helpers import png_data_url

    msgs = [HumanMessage([{"type": "image_url", "image_url": {"url": png_data_url("red")}},
                          {"type": "text", "text": "Caption the image."}])]
    plain = await engine.ainvoke(msgs, max_tokens=4)
    # The scenes-vlm template reads add_generation_prompt: switching it off drops "Assistant:\n"
    # from the prompt, so the switch demonstrably reached the template.
    switched = await engine.ainvoke(msgs, max_tokens=4, chat_template_kwargs={"add_generation_prompt": False})
    assert switched.usage_metadata["input_tokens"] < plain.usage_metadata["input_tokens"]


@pytest.mark.server
@pytest.mark.parametrize("reflect", ["self_questions", "judge"])
async def test_structured_verdicts_over_http(server: Any, reflect: str) -> None:
    from r3graph.serving import chat_model_for_server

    result, replies = await _structured_run(chat_model_for_server(server.url), reflect)
    _check_constrained(result, replies)


@pytest.mark.server
async def test_chat_template_kwargs_travel_in_the_request_body(server: Any) -> None:
    from r3graph import R3Context, build_r3_graph
    from r3graph.serving import chat_model_for_server

    replies = Replies()
    graph = build_r3_graph(chat_model_for_server(server.url), pack="scenes").compile()
    result = await graph.ainvoke(
        {"instruction": "Describe the image.", "images": [str(EXAMPLE_IMAGE)]}, {"callbacks": [replies]},
        context=R3Context(max_rounds=0, chat_template_kwargs={"enable_thinking": False}),
    )
    assert result["output"]  # the server accepted the switch and the template rendered
    assert replies.requests[0]["extra_body"]["chat_template_kwargs"] == {"enable_thinking": False}
