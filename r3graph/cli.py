"""``r3graph`` command line: ``serve`` a model with vLLM, ``run`` the R3 loop on an image (or, with
``--output image``, generate an image and refine it by edits), ``image-server`` for a learned
token-image model, ``export`` trajectories, ``report``; plugins add commands (r3graph-scenes:
``paint-server``, the stand-in image generator). Default models come from plugins too."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from r3graph.errors import R3ConfigError, R3Error, R3ValidationError
from r3graph.export_cli import add_export_parser, run_export
from r3graph.report_cli import add_report_parser, run_report
from r3graph.serving.cluster import ROUTER_POLICIES
from r3graph.serving.env import apply_vllm_env_defaults
from r3graph.serving.image_server import add_image_server_parser, run_image_server

# argparse exits with 2 on a bad command line; a bad input or option found by our checks is the same
# kind of mistake, so it gets the same status. A run that starts and fails exits with 1.
EXIT_BAD_INPUT = 2
# The commands of the core; any other first word may be a plugin's command (r3graph.plugins).
CORE_COMMANDS = frozenset({"serve", "run", "image-server", "export", "report"})
# Plugin commands the docs mention, so their absence is explained rather than an argparse "invalid choice".
PLUGIN_COMMAND_HINTS = frozenset({"paint-server"})


def _split_passthrough(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``serve ... -- --flag x`` -> our args, vLLM's args (passed through untouched)."""
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def _check_model_dir(path: str | None) -> str:
    if path is None:  # no --model: a plugin's default, or a typed error that says what to do
        from r3graph.plugins import require_model_dir

        path = str(require_model_dir())
    if not (Path(path) / "config.json").is_file():
        raise R3ConfigError(f"--model {path}: no model there (config.json missing); pass an HF-format model directory")
    return path


# -- serve ---------------------------------------------------------------------------------------
def _cmd_serve(args: argparse.Namespace, passthrough: list[str]) -> int:
    from r3graph.serving.server import VLLMServer, VLLMServerError

    if args.replicas < 1:
        sys.exit(f"r3graph: --replicas must be at least 1, got {args.replicas}")
    server: Any = VLLMServer(
        _check_model_dir(args.model), host=args.host, port=args.port,
        served_model_name=args.served_model_name, max_model_len=args.max_model_len,
        extra_args=passthrough, startup_timeout=args.startup_timeout, echo=sys.stderr,
    ) if args.replicas == 1 else _cluster(args, passthrough)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # one shutdown path for Ctrl-C and SIGTERM

    signal.signal(signal.SIGTERM, on_term)
    try:
        server.start()
        print(f"r3graph: serving {server.served_model_name} at {server.base_url}  (Ctrl-C stops)",
              flush=True)
        return server.wait()
    except VLLMServerError as e:
        print(f"r3graph: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("r3graph: stopping the vLLM server...", file=sys.stderr, flush=True)
        return 0
    finally:
        server.stop()


def _cluster(args: argparse.Namespace, passthrough: list[str]) -> Any:
    """``serve --replicas N``: N servers on free loopback ports, vllm-router on ``--port``."""
    from r3graph.serving.cluster import VLLMCluster

    return VLLMCluster(
        _check_model_dir(args.model), replicas=args.replicas, policy=args.policy, host=args.host,
        router_port=args.port, startup_timeout=args.startup_timeout, echo=sys.stderr,
        server_options={"served_model_name": args.served_model_name, "max_model_len": args.max_model_len,
                        "extra_args": passthrough},
    )


# -- run -----------------------------------------------------------------------------------------
def _backend_for(args: argparse.Namespace) -> Any:
    from r3graph.backends import make_backend

    try:
        if args.base_url:
            return make_backend("server", base_url=args.base_url, pack=args.pack)
        return make_backend("engine", model_dir=args.model, pack=args.pack)
    except (FileNotFoundError, ValueError) as exc:
        raise R3ConfigError(f"{exc}. Pass --model DIR (an HF-format model directory) or --base-url URL.") from exc


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump()
    return str(value)


async def _run_graph(
    args: argparse.Namespace, backend: Any, checked: Any, show: Any, image_url: str | None, recorder: Any
) -> float:
    from r3graph import build_r3_graph
    from r3graph.serving.image_client import OmniImageClient

    model = backend.model
    images = OmniImageClient(image_url, model=args.image_model or "", api=args.image_api) if image_url else None
    graph = build_r3_graph(model, pack=backend.pack, image_backend=images).compile()
    inputs: Any = {"instruction": args.instruction, "images": checked.images}
    try:
        if hasattr(model, "astart"):
            # Engine start-up (tens of seconds on a CPU) is not part of the run's time.
            await show.engine_start(model.astart())
        t0 = time.perf_counter()
        recorder.reset_clock()  # stage times count from here, not from the engine start
        async for part in graph.astream(inputs, context=checked.context, stream_mode=recorder.modes, subgraphs=True):
            event = recorder.observe(part)
            if event is not None:
                show(event)
    finally:
        if images is not None:
            await images.aclose()
    return time.perf_counter() - t0


def _own_image_server(args: argparse.Namespace, say: Any) -> Any:
    """The image server this command starts (None for a URL): ``learned`` (default), a plugin's
    token-image model behind the image API in a child process (its own vLLM engine), or one a plugin
    names: r3graph-scenes' ``stand-in`` is the rule-based painter in process (a test oracle, not a model)."""
    if args.output != "image" or args.image_server.startswith(("http://", "https://")):
        return None
    if args.image_server != "learned":  # a plugin's (preflight checked that one has it)
        from r3graph.plugins import image_server

        start = image_server(args.image_server)
        if start is None:
            raise R3ConfigError(f"--image-server {args.image_server!r}: no plugin provides it")
        server, label = start(args)
        say(f"image generator: {label}")
        return server
    from r3graph.plugins import require_image_model_dir
    from r3graph.serving.image_server import ImageServerProcess

    model_dir = require_image_model_dir()
    say(f"image generator: starting {model_dir.name} (learned, served by vLLM) on 127.0.0.1")
    return ImageServerProcess(model_dir).start()  # its output joins the run log


def _save_images(rounds: list[Any], final: dict[str, Any], folder: str) -> dict[int, str]:
    """round-N.png for every round and final.png; returns {round index: path}."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for r in rounds:
        if r.image is not None:
            path = out / f"round-{r.index}.png"
            path.write_bytes(r.image)
            paths[r.index] = str(path)
    if final.get("image") is not None:
        (out / "final.png").write_bytes(final["image"])
    return paths


def _round_json(r: Any, files: dict[int, str]) -> dict[str, Any]:
    data = r.model_dump(exclude={"image"})
    if r.image is not None:  # bytes do not belong in a JSON line: size, and the file when saved
        data["image"] = {"bytes": len(r.image), "file": files.get(r.index)}
    return data


def _cmd_run(args: argparse.Namespace) -> int:
    from r3graph.preflight import check_run

    checked = check_run(args)  # before anything slow starts: bad input fails in about a second
    if not args.verbose:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO")  # the full story, in the log file
    apply_vllm_env_defaults(getattr(args, "model", None))
    from rich.console import Console

    from r3graph.cli_output import LogCapture, RunScreen, keep_stdout_for, run_failed, shown_path, summary_lines
    from r3graph.report import StageRecorder, write_report

    capture = None if args.verbose else LogCapture("run")
    out = capture.stdout if capture else keep_stdout_for(args.json)
    err = capture.stderr if capture else sys.stderr
    console = Console(file=err if args.json else out, highlight=False)
    screen = RunScreen(console, quiet_stages=args.json)
    if capture is not None:
        screen.say(f"engine and library logs: {shown_path(capture.path)} (--verbose shows them here)")

    from r3graph.telemetry import configure_tracing

    recorder, tracing, own_server = StageRecorder(), None, None
    inputs = {"instruction": args.instruction, "images": list(args.image or [])}
    details = {"model": "(not started)", "pack": str(args.pack), "reflect": args.reflect,
               "max_rounds": str(args.max_rounds), "select": args.select}
    try:  # from here on fds 1/2 are the log file: every failure must be told on `err`
        backend = _backend_for(args)
        details |= {"model": f"{backend.model_name} ({backend.kind})", "pack": backend.pack}
        tracing = configure_tracing(args.trace)
        own_server = _own_image_server(args, screen.say)
        image_url = own_server.url if own_server is not None else args.image_server if args.output == "image" else None
        if image_url is not None:
            learned = f"{Path(getattr(own_server, 'model_dir', '')).name} (learned)"
            details["image generator"] = {"stand-in": "stand-in painter (not a model)", "learned": learned}.get(
                args.image_server, image_url)
        elapsed = asyncio.run(_run_graph(args, backend, checked, screen, image_url, recorder))
    except (Exception, KeyboardInterrupt) as exc:
        if args.report and isinstance(exc, R3Error) and exc.rounds:  # the work done, with the error
            write_report({"rounds": exc.rounds}, args.report, inputs=inputs, stages=recorder.stages,
                         details=details, error=str(exc))
        return run_failed(exc, capture, err)
    finally:
        if tracing is not None:
            tracing()
        if own_server is not None:
            own_server.stop()
        from r3graph.serving.registry import shutdown_engines

        shutdown_engines()
    final = recorder.result
    rounds = final.get("rounds", [])
    files = _save_images(rounds, final, args.save_images) if args.save_images else {}
    if args.report:
        write_report(final, args.report, inputs=inputs, stages=recorder.stages, details=details)
    result = {
        "output": final.get("output"), "stop_reason": final.get("stop_reason"),
        "rounds": [_round_json(r, files) for r in rounds],
        "usage": _plain(final["usage"]) if "usage" in final else None, "elapsed_s": round(elapsed, 3),
    }
    if args.save_images:
        result["image_dir"] = args.save_images
    if args.report:
        result["report"] = args.report
    if args.json:
        out.write(json.dumps(result, default=_plain) + "\n")
        out.flush()
        return 0
    console.rule("result", style="dim")
    saved = f"{args.save_images}/final.png" if args.save_images else None
    head, stats = summary_lines(final, elapsed, screen.start_s, saved)
    console.print(head, markup=False)
    console.print(stats, style="dim", markup=False, soft_wrap=True)
    if args.report:
        screen.say(f"report: {args.report}")
    return 0


# -- parser --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="r3graph", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run vLLM's OpenAI-compatible server with R3's flags",
                       epilog="Flags after `--` go to vLLM untouched, e.g. -- --max-num-seqs 32")
    s.add_argument("--model", default=None, help="HF-format model directory (default: a plugin's, e.g. scenes-vlm)")
    s.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--served-model-name", default=None, help="default: the model directory's name")
    s.add_argument("--max-model-len", type=int, default=None, help="default: the model's own limit")
    s.add_argument("--startup-timeout", type=float, default=600.0, help="seconds to wait for /health")
    s.add_argument("--replicas", type=int, default=1,
                   help="N > 1: N servers behind vllm-router, which listens on --port (see README: Scaling out)")
    s.add_argument("--policy", default="consistent_hash", choices=ROUTER_POLICIES,
                   help="router policy with --replicas (consistent_hash: a run stays on one replica)")

    r = sub.add_parser("run", help="run Reason -> Reflect -> Refine on an image, or generate one")
    r.add_argument("--image", action="append", help="image file (repeatable); not with --output image")
    r.add_argument("--instruction", default="Describe the image.", help="the task, or the prompt for --output image")
    r.add_argument("--output", choices=["text", "image"], default="text",
                   help="image: generate from --instruction, judge, edit (needs an image server)")
    r.add_argument("--image-server", default="learned",
                   help="'learned' (default): a plugin's token-image model (r3graph-scenes: scenes-imagegen) served "
                   "by vLLM behind the image API; a vllm-omni base URL (e.g. http://127.0.0.1:8001/v1); or a name a "
                   "plugin adds, e.g. r3graph-scenes' 'stand-in': the rule-based scene painter in process (a test "
                   "oracle, not a model)")
    r.add_argument("--image-model", default=None, help="model name sent to the image server")
    r.add_argument("--image-api", choices=["images", "chat"], default="images",
                   help="vllm-omni endpoints: images (/v1/images/*) or chat (/v1/chat/completions, BAGEL's example)")
    r.add_argument("--stand-in-error-rate", type=float, default=0.3, help="chance the stand-in paints one mistake")
    r.add_argument("--size", default=None, help="image size WxH (image output)")
    r.add_argument("--steps", type=int, default=None, help="diffusion steps (image output)")
    r.add_argument("--guidance", type=float, default=None, help="guidance scale (image output)")
    r.add_argument("--seed", type=int, default=None, help="generation seed (image output)")
    r.add_argument("--plan", action="store_true", help="plan a detailed generation prompt first (image output)")
    r.add_argument("--save-images", default=None, metavar="DIR", help="write round-N.png and final.png here")
    r.add_argument("--max-rounds", type=int, default=1)
    r.add_argument("--reflect", default="self_questions",
                   help="self_questions | judge | multi_step | none")
    r.add_argument("--select", choices=["last", "best"], default="last",
                   help="best keeps the best-judged round, so refine cannot make the answer worse")
    r.add_argument("--pack", default=None, help="prompt pack (default: the model dir's declared one, else default)")
    r.add_argument("--base-url", default=None, help="use a running server instead of an in-process engine")
    r.add_argument("--model", default=None,
                   help="model directory for the in-process engine (default: a plugin's, e.g. scenes-vlm)")
    r.add_argument("--json", action="store_true", help="print one JSON object, nothing else on stdout")
    r.add_argument("--verbose", action="store_true",
                   help="show engine and library logs here (by default they go to a log file under .cache/logs)")
    r.add_argument("--report", default=None, metavar="PATH.html",
                   help="write a self-contained HTML report of the run (rounds, checks, images, timings)")
    r.add_argument("--trace", choices=["none", "console", "otlp"], default="none",
                   help="export spans: otlp reads the standard OTEL_EXPORTER_OTLP_* variables")

    # Plugins' commands parse their own arguments (main() hands them the rest of the command line).
    from r3graph.plugins import command_names

    for name in command_names():
        sub.add_parser(name, help="(from a plugin)", add_help=False)

    add_image_server_parser(sub)
    add_export_parser(sub)
    add_report_parser(sub)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    ours, passthrough = _split_passthrough(sys.argv[1:] if argv is None else argv)
    try:
        if ours[:1] and not ours[0].startswith("-") and ours[0] not in CORE_COMMANDS:
            from r3graph.plugins import command

            plugin_command = command(ours[0])
            if plugin_command is not None:
                if passthrough:
                    raise R3ConfigError("`--` passthrough flags are only for `serve`")
                return plugin_command(ours[1:]) or 0
            if ours[0] in PLUGIN_COMMAND_HINTS:
                from r3graph.plugins import SCENES_HINT

                raise R3ConfigError(f"`{ours[0]}` comes with a plugin and none provides it: {SCENES_HINT}")
        args = build_parser().parse_args(ours)
        if args.command == "serve":
            return _cmd_serve(args, passthrough)
        if passthrough:
            raise R3ConfigError("`--` passthrough flags are only for `serve`")
        if args.command == "image-server":
            return run_image_server(args)
        if args.command == "export":
            return run_export(args)
        if args.command == "report":
            return run_report(args)
        return _cmd_run(args)
    except R3ValidationError as exc:  # bad input or options: say what to change, no traceback
        print(f"r3graph: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
