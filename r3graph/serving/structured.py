"""Structured output for chat models that accept vLLM structured-output parameters.

Why constrained decoding rather than tool calling: small VLMs have no tool-calling training, but
vLLM's grammar backend (xgrammar) makes any model emit JSON matching the schema.
"""

from __future__ import annotations

import functools
import json
from operator import itemgetter
from typing import Any, Literal

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable, RunnableLambda, RunnableMap, RunnablePassthrough
from pydantic import BaseModel, ValidationError


def _closed(node: Any) -> Any:
    """Objects without ``additionalProperties`` get ``false`` (as OpenAI strict mode does).

    Why: xgrammar otherwise lets the model append arbitrary extra keys, which a weak model does
    until max_tokens; a pydantic model would ignore them anyway.
    """
    if isinstance(node, dict):
        node = {k: _closed(v) for k, v in node.items()}
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
    elif isinstance(node, list):
        node = [_closed(v) for v in node]
    return node


def json_schema_of(schema: type[BaseModel] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema, dict):
        # Accept the OpenAI response_format wrapper as well as a bare JSON schema.
        return schema.get("schema", schema) if "schema" in schema and "name" in schema else schema
    return _closed_schema(schema)


@functools.cache
def _closed_schema(schema: type[BaseModel]) -> dict[str, Any]:
    # Built once per class (pydantic rebuilds it on every call, ~1 ms); callers only read it.
    return _closed(schema.model_json_schema())


def strict_parser(schema: type[BaseModel] | dict[str, Any]) -> Runnable[BaseMessage, Any]:
    """Parse the whole message as JSON, no partial-JSON repair.

    Why strict: LangChain's JSON parsers repair truncated JSON (``{"ok": tr`` parses as ``{}``),
    which would hide a ``max_tokens`` cut-off as an empty object. A cut-off is an error here.
    """
    is_model = isinstance(schema, type) and issubclass(schema, BaseModel)

    def parse(msg: BaseMessage) -> Any:
        text = msg.text if isinstance(msg.text, str) else str(msg.content)
        try:
            data = json.loads(text)
            return schema.model_validate(data) if is_model else data  # type: ignore[union-attr]
        except (json.JSONDecodeError, ValidationError) as e:
            # Complete JSON is fine even at max_tokens (a model may miss EOS after the closing
            # brace); incomplete JSON at max_tokens is a cut-off, said plainly.
            if msg.response_metadata.get("finish_reason") == "length":
                raise OutputParserException(
                    "structured output was cut off by max_tokens; raise max_tokens", llm_output=text
                ) from e
            raise OutputParserException(f"invalid structured output: {e}", llm_output=text) from e

    return RunnableLambda(parse, name="StrictJsonParser")


def structured_runnable(
    llm: BaseChatModel,
    schema: type[BaseModel] | dict[str, Any],
    *,
    include_raw: bool,
    method: Literal["json_schema", "json_mode"],
) -> Runnable[LanguageModelInput, Any]:
    if method == "json_schema":
        so: dict[str, Any] = {"json": json_schema_of(schema)}
    elif method == "json_mode":
        so = {"json_object": True}
    else:
        raise ValueError(f"unsupported structured output method {method!r}")
    parser = strict_parser(schema)
    bound = llm.bind(structured_outputs=so, ls_structured_output_format={
        "kwargs": {"method": method}, "schema": schema})
    if not include_raw:
        return bound | parser
    # Same shape as LangChain's own include_raw: {"raw", "parsed", "parsing_error"}.
    parse = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
    none = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=bound) | parse.with_fallbacks([none], exception_key="parsing_error")
