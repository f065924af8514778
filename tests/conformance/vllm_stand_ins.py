"""The few vLLM names vllm-omni's request handling uses, for ``.venv-omni`` where vLLM is absent.

Each follows vLLM's own definition (vllm/entrypoints/serve/engine/protocol.py,
.../exception_handling/handlers/*.py, .../utils/api_utils.py, .../chat_completion/protocol.py):
the same field names, error envelope ``{"error": {"message", "type", "param", "code"}}``, status
codes and validation behaviour (a request body that fails validation is a 400, not FastAPI's 422).
The chat request model here is permissive like vLLM's (``extra="allow"``); the test suite checks
every chat body our client sends against vLLM's real ``ChatCompletionRequest`` separately, in the
main environment where vLLM is installed.
"""

from __future__ import annotations

import logging
import time
import uuid
from http import HTTPStatus
from typing import Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field


class _OnceLogger(logging.LoggerAdapter):
    """vLLM's logger has ``*_once`` methods; vllm-omni calls them."""

    def warning_once(self, msg: str, *args: Any) -> None:
        self.warning(msg, *args)

    def info_once(self, msg: str, *args: Any) -> None:
        self.info(msg, *args)

    def debug_once(self, msg: str, *args: Any) -> None:
        self.debug(msg, *args)


def init_logger(name: str) -> _OnceLogger:
    return _OnceLogger(logging.getLogger(name), {})


def random_uuid() -> str:
    return uuid.uuid4().hex


class OpenAIBaseModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorInfo(OpenAIBaseModel):
    message: str
    type: str
    param: str | None = None
    code: int


class ErrorResponse(OpenAIBaseModel):
    error: ErrorInfo


class UsageInfo(OpenAIBaseModel):
    prompt_tokens: int = 0
    total_tokens: int = 0
    completion_tokens: int | None = 0


class RequestResponseMetadata(BaseModel):
    request_id: str
    final_usage_info: UsageInfo | None = None


class ChatCompletionRequest(OpenAIBaseModel):
    messages: list[dict[str, Any]]
    model: str | None = None
    n: int | None = 1
    seed: int | None = None
    stream: bool | None = False
    max_tokens: int | None = None
    temperature: float | None = None


class ChatMessage(OpenAIBaseModel):
    role: str
    content: str | None = None


class ChatCompletionResponseChoice(OpenAIBaseModel):
    index: int
    message: ChatMessage
    logprobs: Any = None
    finish_reason: str | None = "stop"
    stop_reason: int | str | None = None


class ChatCompletionResponse(OpenAIBaseModel):
    id: str = Field(default_factory=lambda: f"chatcmpl-{random_uuid()}")
    object: str = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatCompletionResponseChoice]
    usage: UsageInfo


class OmniChatCompletionResponse(ChatCompletionResponse):
    metrics: dict[str, Any] | None = None


class EngineGenerateError(Exception):
    """vLLM: AsyncLLM.generate() failed (recoverable); answered as 500 InternalServerError."""


class EngineDeadError(Exception):
    """vLLM: the engine core died (unrecoverable); answered as 500 InternalServerError."""


def create_error_response(message: str | Exception, err_type: str = "BadRequestError",
                          status_code: HTTPStatus = HTTPStatus.BAD_REQUEST, param: str | None = None) -> ErrorResponse:
    if isinstance(message, EngineGenerateError | EngineDeadError):
        err_type, status_code = "InternalServerError", HTTPStatus.INTERNAL_SERVER_ERROR
    return ErrorResponse(error=ErrorInfo(message=str(message), type=err_type, code=int(status_code), param=param))


def terminate_if_errored(server: Any, engine: Any) -> None:
    """vLLM shuts the server down when the engine died; the fake engine never dies for good."""


async def validate_json_request(raw_request: Request) -> None:
    media_type = raw_request.headers.get("content-type", "").lower().split(";", maxsplit=1)[0]
    if media_type != "application/json":
        raise RequestValidationError(errors=["Unsupported Media Type: Only 'application/json' is allowed"])


async def http_exception_handler(req: Request, exc: HTTPException) -> JSONResponse:
    err = ErrorResponse(error=ErrorInfo(message=str(exc.detail), type=HTTPStatus(exc.status_code).phrase,
                                        code=exc.status_code))
    return JSONResponse(err.model_dump(), status_code=exc.status_code)


async def validation_exception_handler(req: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    param = None
    if errors and isinstance(errors[0], dict) and errors[0].get("loc"):
        param = ".".join(str(p) for p in errors[0]["loc"])
    label = "error" if len(errors) == 1 else "errors"
    message = f"{len(errors)} validation {label}:\n" + "".join(f"  {e}\n" for e in errors[:10])
    err = ErrorResponse(error=ErrorInfo(message=message.rstrip(), type=HTTPStatus.BAD_REQUEST.phrase,
                                        code=HTTPStatus.BAD_REQUEST, param=param))
    return JSONResponse(err.model_dump(), status_code=HTTPStatus.BAD_REQUEST)


async def exception_handler(req: Request, exc: Exception) -> JSONResponse:
    err = create_error_response(exc, err_type="InternalServerError", status_code=HTTPStatus.INTERNAL_SERVER_ERROR)
    if isinstance(exc, ValueError | TypeError | OverflowError):
        err = create_error_response(exc)
    return JSONResponse(err.model_dump(), status_code=err.error.code)


NAMES: dict[str, Any] = {
    name: globals()[name]
    for name in (
        "init_logger", "random_uuid", "ErrorInfo", "ErrorResponse", "UsageInfo", "RequestResponseMetadata",
        "ChatCompletionRequest", "ChatMessage", "ChatCompletionResponseChoice", "ChatCompletionResponse",
        "OmniChatCompletionResponse", "EngineGenerateError", "EngineDeadError", "create_error_response",
        "terminate_if_errored", "validate_json_request",
    )
}
