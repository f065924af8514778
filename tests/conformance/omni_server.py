"""vllm-omni's own request handling on 127.0.0.1 with a fake engine behind it. Run by ``.venv-omni``'s python.

    .venv-omni/bin/python tests/conformance/omni_server.py --topology bagel --model ByteDance-Seed/BAGEL-7B-MoT

The routes ``/v1/images/generations``, ``/v1/images/edits``, ``/v1/chat/completions`` and ``/v1/models``
are vllm-omni's route functions, mounted with the paths their decorators name; behind them run
vllm-omni's request models, its helpers and the methods of ``OmniOpenAIServingChat`` that read a chat
request and build the image reply (see omni_loader). Two pieces are written here because their real
code needs the whole of vLLM: the engine (``FakeEngine`` in fake_omni_engine.py paints a deterministic
image from what reached the diffusion stage and records it, so tests can see what vllm-omni passed on),
and, for a multi-stage
chat request, the few lines of ``_create_chat_completion`` between its tokenizer work and its engine
call (``_multistage_chat``, which calls the real methods for every step it can). Prints
``READY <url>`` when listening; ``GET /_fake/calls`` lists what reached the engine.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import socket
import sys
import time
import traceback
import types
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import omni_loader
import vllm_stand_ins as vllm
from fake_omni_engine import REQUEST_OUTPUT_KIND, TOPOLOGIES, TORCH_STAND_IN, FakeEngine, SamplingParams

ROOT = omni_loader.install_bare_packages()

import uvicorn  # noqa: E402
from fastapi import Depends, FastAPI, HTTPException, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from PIL import Image  # noqa: E402


def _load() -> dict[str, Any]:
    """vllm-omni's modules, dependencies first; returns the route functions and the chat class."""
    load, common = omni_loader.load_partial, dict(vllm.NAMES, SamplingParams=SamplingParams)
    data = load(ROOT, "vllm_omni.inputs.data", ["OmniDiffusionSamplingParams", "DIFFUSION_QUALITY_LEVELS"],
                provide={"torch": TORCH_STAND_IN, **common})
    data.module.OmniTextPrompt = dict  # a TypedDict: a plain dict at run time
    data.module.OmniSamplingParams = SamplingParams | data.module.OmniDiffusionSamplingParams
    load(ROOT, "vllm_omni.entrypoints.openai.utils",
         ["get_stage_type", "resolve_diffusion_od_config", "parse_lora_request", "is_single_stage_diffusion"],
         provide=common)
    load(ROOT, "vllm_omni.entrypoints.openai.stage_params",
         ["logger", "clone_sampling_params", "get_default_sampling_params_list", "resolve_stage_sampling_params",
          "build_stage_sampling_params_list"], provide=common)
    load(ROOT, "vllm_omni.entrypoints.openai.diffusion_request_utils",
         ["logger", "_request_mapping", "normalize_diffusion_request_args",
          "apply_normalized_diffusion_request_extra_args"], provide=common)
    load(ROOT, "vllm_omni.entrypoints.utils", ["coerce_param_message_types", "maybe_coerce_to_message_type"],
         provide={"RequestOutputKind": REQUEST_OUTPUT_KIND, **common})
    load(ROOT, "vllm_omni.entrypoints.openai.app_state", ["_get_engine_and_model", "_get_diffusion_od_config",
                                                          "Omnichat"], provide=common)
    load(ROOT, "vllm_omni.entrypoints.openai.images.helpers",
         ["logger", "_get_max_edit_input_images", "_check_max_generated_image_size", "_build_hunyuan_edit_extra_args",
          "_update_if_not_none", "_normalize_image", "_extract_images_from_result", "_generated_size_str",
          "_load_input_images", "_choose_output_format"], provide=common)
    load(ROOT, "vllm_omni.entrypoints.openai.diffusion",
         ["MAX_UINT32_SEED", "_generate_with_async_omni", "apply_stage_default_sampling_params"],
         provide={"AsyncOmni": FakeEngine, **common})
    load(ROOT, "vllm_omni.entrypoints.openai.lora", ["_get_lora_from_json_str", "_parse_lora_request"],
         provide=common)
    load(ROOT, "vllm_omni.entrypoints.serve.utils.errors",
         ["logger", "_get_request_id_from_request", "_build_engine_error_payload",
          "_create_engine_error_json_response"], provide=common)
    load(ROOT, "vllm_omni.diffusion.utils.param_utils", ["apply_declared_extra_args"], provide=common)
    from vllm_omni.model_extras import registry  # light: PIL and the per-model extras tables

    chat = load(ROOT, "vllm_omni.entrypoints.openai.serving_chat", ["logger"],
                provide={"AsyncOmni": FakeEngine, "get_extra_body_params": registry.get_extra_body_params,
                         "get_extra_output_params": registry.get_extra_output_params, **common},
                classes={"OmniOpenAIServingChat": CHAT_METHODS})
    api = load(ROOT, "vllm_omni.entrypoints.openai.api_server", ["logger", *ROUTES, *API_HELPERS],
               provide={"ENDPOINT_LOAD_METRICS_FORMAT_HEADER_LABEL": "endpoint-load-metrics-format",
                        "metrics_header": lambda _format: None, **common})
    unresolved = {name: omni_loader.unresolved_globals(getattr(api.module, name), vars(api.module)) for name in ROUTES}
    for cls_method in CHAT_METHODS:
        fn = getattr(chat.module.OmniOpenAIServingChat, cls_method)
        unresolved[cls_method] = omni_loader.unresolved_globals(fn, vars(chat.module))
    for name, missing in unresolved.items():
        if missing:  # names only reached on paths a test does not take (audio, LoRA, Hunyuan, ...)
            print(f"omni_server: {name} reads names not available here: {sorted(missing)}", file=sys.stderr)
    return {"api": api, "chat": chat.module.OmniOpenAIServingChat, "params": data.module.OmniDiffusionSamplingParams}


ROUTES = ["generate_images", "edit_images", "create_chat_completion", "show_available_models"]
API_HELPERS = ["_validate_chat_completion_raw_body", "_build_image_response_metrics",
               "_build_image_generation_response"]
CHAT_METHODS = [
    "_normalize_diffusion_request_args", "_get_diffusion_extra_body_params", "_get_diffusion_extra_output_params",
    "_get_diffusion_text_output", "_truthy_extra_body_flag", "_filter_stage_metrics_detail", "_create_image_choice",
    "generate_diffusion_images", "_prepare_diffusion_image_request", "_build_multistage_generation_inputs",
    "_set_if_supported", "_flatten_diffusion_images", "_create_diffusion_chat_completion",
    "_extract_diffusion_prompt_and_media", "_extract_diffusion_prompt_and_images_from_messages",
    "_messages_to_dicts", "_resolve_height_width_from_extra_body", "_create_error_response",
    "_get_comprehension_stage_index", "_apply_request_overrides", "_build_sampling_params_list_from_request",
    "_apply_text_chat_ar_task_mode",
]


# -- the multi-stage chat request between tokenizer and engine -----------------------------------------------
async def _multistage_chat(self: Any, request: Any, raw_request: Any) -> Any:
    """``OmniOpenAIServingChat._create_chat_completion`` for a request on a multi-stage pipeline, with its
    tokenizer/chat-template work left out (an image request replaces that prompt anyway). The inline
    steps follow vllm-omni 0.30.0 line by line; every method called is vllm-omni's own."""
    normalized_extra_args: dict[str, Any] = {}
    extra_body: dict[str, Any] = {}
    if any(stage.stage_type == "diffusion" for stage in self.engine_client.stage_configs):  # serves_diffusion
        try:
            normalized_extra_args, extra_body = self._normalize_diffusion_request_args(request)
        except ValueError as exc:
            return self._create_error_response(str(exc), status_code=400)
    if self._diffusion_mode:
        return await self._create_diffusion_chat_completion(request, normalized_extra_args, extra_body, raw_request)
    if request.model and request.model != self.model_name:  # OpenAIServing._check_model
        return vllm.create_error_response(
            f"The model `{request.model}` does not exist. Valid aliases: {self.model_name}.",
            err_type="NotFoundError", status_code=404, param="model")
    engine_modalities = [m for m in self.engine_client.output_modalities if m is not None]
    request.modalities = getattr(request, "modalities", None) or engine_modalities
    unsupported = set(request.modalities) - set(engine_modalities)
    if unsupported:
        return self._create_error_response(
            f"Unsupported output modalities {', '.join(sorted(unsupported))} for this model. "
            f"Supported modalities: {', '.join(sorted(set(engine_modalities)))}")
    height = width = steps = None
    engine_prompt: dict[str, Any] = {"prompt": ""}
    if "image" in request.modalities:
        prompt, references = self._extract_diffusion_prompt_and_images_from_messages(request.messages)
        if not prompt:
            return self._create_error_response("No text prompt found in messages")
        height, width = self._resolve_height_width_from_extra_body(extra_body)
        steps = extra_body.get("num_inference_steps")
        steps = int(steps) if steps is not None else None
        engine_prompt = {"prompt": prompt, "modalities": ["image"]}
        if references:
            import base64

            engine_prompt["multi_modal_data"] = {"img2img": Image.open(io.BytesIO(base64.b64decode(references[0])))}
            engine_prompt["modalities"] = ["img2img"]
    params_list = self._build_sampling_params_list_from_request(request)
    comprehension = self._get_comprehension_stage_index() if height is not None and width is not None else None
    self._apply_text_chat_ar_task_mode(params_list, request)
    for idx, sp in enumerate(params_list):
        if idx == comprehension:
            sp.extra_args = {**(sp.extra_args or {}), "target_h": int(height), "target_w": int(width)}
        if hasattr(sp, "height") and height is not None:
            sp.height = height
        if hasattr(sp, "width") and width is not None:
            sp.width = width
        if hasattr(sp, "num_inference_steps") and steps is not None:
            sp.num_inference_steps = steps
        if isinstance(sp, PARAMS_CLS[0]):
            self._set_if_supported(sp, quality=extra_body.get("quality"))
            APPLY_EXTRA[0](sp, normalized_extra_args)
    choices = []
    async for output in self.engine_client.generate(prompt=engine_prompt, sampling_params_list=params_list):
        if output.final_output_type not in request.modalities:
            continue  # chat_completion_full_generator drops outputs the request did not ask for
        if output.final_output_type == "image":
            choices.extend(self._create_image_choice(output, "assistant", request))
        else:
            text = self._get_diffusion_text_output(output)
            choices.append(vllm.ChatCompletionResponseChoice(index=0, message=vllm.ChatMessage(role="assistant",
                                                                                            content=text)))
    return vllm.OmniChatCompletionResponse(model=self.model_name, choices=choices, usage=vllm.UsageInfo())


PARAMS_CLS: list[type] = []
APPLY_EXTRA: list[Any] = []


def build_app(args: argparse.Namespace) -> tuple[FastAPI, FakeEngine]:
    loaded = _load()
    api, chat_cls, params_cls = loaded["api"], loaded["chat"], loaded["params"]
    PARAMS_CLS.append(params_cls)
    APPLY_EXTRA.append(sys.modules["vllm_omni.entrypoints.openai.diffusion_request_utils"]
                       .apply_normalized_diffusion_request_extra_args)
    engine = FakeEngine(args.topology, args.model, args.max_input_images, args.fail, params_cls)
    engine.empty = args.empty

    class ServingChat(chat_cls):
        create_chat_completion = _multistage_chat

    serving_chat = ServingChat()
    serving_chat.engine_client = engine
    serving_chat.model_name = args.model
    single = len(engine.stage_configs) == 1 and engine.stage_configs[0].stage_type == "diffusion"
    serving_chat._diffusion_mode = single  # OmniOpenAIServingChat.for_diffusion for a pure diffusion model
    serving_chat._diffusion_engine = engine if single else None
    serving_chat._diffusion_model_name = args.model

    app = FastAPI()
    app.add_exception_handler(HTTPException, vllm.http_exception_handler)
    app.add_exception_handler(RequestValidationError, vllm.validation_exception_handler)
    app.add_exception_handler(Exception, vllm.exception_handler)
    for name, (path, methods, json_body, no_model) in api.route_paths.items():
        deps = [Depends(vllm.validate_json_request)] if json_body else None
        extra: dict[str, Any] = {"response_model": None} if no_model else {}
        app.add_api_route(path, getattr(api.module, name), methods=methods, dependencies=deps, **extra)

    models = types.SimpleNamespace(base_model_paths=[types.SimpleNamespace(name=args.model)])

    async def show_models() -> Any:
        return types.SimpleNamespace(model_dump=lambda: {"object": "list", "data": [
            {"id": args.model, "object": "model", "owned_by": "vllm-omni", "root": args.model}]})

    models.show_available_models = show_models
    state = app.state
    state.engine_client = engine
    state.stage_configs = engine.stage_configs
    state.openai_serving_models = models
    state.openai_serving_chat = serving_chat
    state.args = types.SimpleNamespace(default_sampling_params=None, max_generated_image_size=args.max_pixels,
                                       log_error_stack=False)
    state.server = None

    @app.get("/_fake/calls")
    async def calls() -> JSONResponse:
        return JSONResponse(engine.calls)

    @app.middleware("http")
    async def log_errors(request: Request, call_next: Any) -> Any:
        try:
            return await call_next(request)
        except Exception:
            traceback.print_exc()
            raise

    return app, engine


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topology", choices=sorted(TOPOLOGIES), default="bagel")
    parser.add_argument("--model", default="ByteDance-Seed/BAGEL-7B-MoT")
    parser.add_argument("--max-input-images", type=int, default=None)
    parser.add_argument("--max-pixels", type=int, default=None, help="--max-generated-image-size")
    parser.add_argument("--fail", action="store_true", help="the engine raises EngineGenerateError")
    parser.add_argument("--empty", action="store_true", help="the diffusion stage finishes without an image")
    args = parser.parse_args()
    app, _ = build_app(args)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    print(f"READY http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    asyncio.run(server.serve(sockets=[sock]))
    time.sleep(0)


if __name__ == "__main__":
    main()
