"""``r3graph`` command line: ``serve`` a model with vLLM, ``run`` the R3 loop on an image (or, with
``--output image``, generate an image and refine it by edits), ``paint-server`` for the stand-in
image generator, ``export`` trajectories."""

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

from r3graph.export_cli import add_export_parser, run_export
from r3graph.serving.env import SHIPPED_MODEL_DIR, apply_vllm_env_defaults


def _split_passthrough(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``serve ... -- --flag x`` -> our args, vLLM's args (passed through untouched)."""
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def _check_model_dir(path: str) -> str:
    if not (Path(path) / "config.json").is_file():
        sys.exit(
            f"r3graph: no model at {path} (config.json missing). Pass --model DIR "
            "(an HF-format model directory) or --base-url URL of a running server."
        )
    return path


# -- serve ---------------------------------------------------------------------------------------
def _cmd_serve(args: argparse.Namespace, passthrough: list[str]) -> int:
    from r3graph.serving.server import VLLMServer, VLLMServerError

    server = VLLMServer(
        _check_model_dir(args.model), host=args.host, port=args.port,
        served_model_name=args.served_model_name, max_model_len=args.max_model_len,
        extra_args=passthrough, startup_timeout=args.startup_timeout, echo=sys.stderr,
    )

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


# -- run -----------------------------------------------------------------------------------------
def _backend_for(args: argparse.Namespace) -> Any:
    from r3graph.backends import make_backend

    try:
        if args.base_url:
            return make_backend("server", base_url=args.base_url, pack=args.pack)
        return make_backend("engine", model_dir=args.model, pack=args.pack)
    except (FileNotFoundError, ValueError) as exc:
        sys.exit(f"r3graph: {exc}. Pass --model DIR (an HF-format model directory) or --base-url URL.")


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump()
    return str(value)


def _event_line(event: dict[str, Any]) -> str:
    stage = str(event.get("stage", "?"))
    where = f"round {event.get('round', '?')}"
    if "index" in event:
        where += f" #{event['index']}"
    head = f"[{where}] {stage}"
    if "verdict" in event:
        head += f" ({event['verdict']}, score {event.get('score', 0):.2f})"
    item = f"{event['item']} -> " if "item" in event else ""
    return f"{head}: {item}{event.get('text', '')}"


async def _run_graph(
    args: argparse.Namespace, backend: Any, show: Any, image_url: str | None
) -> tuple[dict[str, Any], float]:
    from r3graph import R3Context, build_r3_graph
    from r3graph.image_generation import ImageParams
    from r3graph.serving.image_client import OmniImageClient

    model = backend.model
    images = OmniImageClient(image_url, model=args.image_model or "") if image_url else None
    graph = build_r3_graph(model, pack=backend.pack, image_backend=images).compile()
    ctx = R3Context(
        max_rounds=args.max_rounds, reflect=args.reflect, select=args.select, output=args.output,
        image=ImageParams(size=args.size, steps=args.steps, guidance=args.guidance, seed=args.seed, plan=args.plan),
    )
    inputs: Any = {"instruction": args.instruction, "images": list(args.image or [])}
    final: Any = {}
    if hasattr(model, "astart"):
        await model.astart()  # engine start-up (~30 s on CPU) is not part of the run's time
    t0 = time.perf_counter()
    modes: Any = ["custom", "values"]
    try:
        async for part in graph.astream(inputs, context=ctx, stream_mode=modes, subgraphs=True):
            _namespace, mode, chunk = part
            if mode == "custom" and isinstance(chunk, dict):
                show(chunk)
            elif mode == "values" and not _namespace:
                final = chunk
    finally:
        if images is not None:
            await images.aclose()
    return final, time.perf_counter() - t0


def _stand_in(args: argparse.Namespace) -> Any:
    """The stand-in image generator, in-process on a free loopback port, for --image-server stand-in."""
    from r3graph.scenes.paint_server import NOTICE, PaintServer

    server = PaintServer(error_rate=args.stand_in_error_rate, seed=args.seed or 0).start()
    print(f"r3graph: image generator: {server.url} ({NOTICE})", file=sys.stderr, flush=True)
    return server


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
    if not args.verbose:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    apply_vllm_env_defaults(getattr(args, "model", None))
    if args.output == "text" and not args.image:
        sys.exit("r3graph: --image FILE is required (or --output image to generate one from --instruction)")
    if args.output == "image" and args.image:
        sys.exit("r3graph: --output image generates from --instruction alone; drop --image")
    for image in args.image or []:
        if not Path(image).is_file():
            sys.exit(f"r3graph: image not found: {image}")
    json_out = None
    if args.json:
        # Keep stdout for the one JSON object: vLLM and its child processes log to fd 1, so
        # point fd 1 at stderr for the run and write the result to the saved original.
        json_out = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)

    from rich.console import Console

    console = Console(stderr=args.json, highlight=False)
    colours = {"reason": "cyan", "refine": "green", "reflect": "yellow", "review": "magenta"}

    def show(event: dict[str, Any]) -> None:
        if not args.json:
            console.print(_event_line(event), style=colours.get(str(event.get("stage")), "white"),
                          markup=False)

    from r3graph.telemetry import configure_tracing

    backend = _backend_for(args)
    tracing = configure_tracing(args.trace)
    stand_in = _stand_in(args) if args.output == "image" and args.image_server == "stand-in" else None
    image_url = stand_in.url if stand_in is not None else args.image_server if args.output == "image" else None
    try:
        final, elapsed = asyncio.run(_run_graph(args, backend, show, image_url))
    finally:
        tracing()
        if stand_in is not None:
            stand_in.stop()
        from r3graph.serving.registry import shutdown_engines

        shutdown_engines()
    rounds = final.get("rounds", [])
    files = _save_images(rounds, final, args.save_images) if args.save_images else {}
    result = {
        "output": final.get("output"), "stop_reason": final.get("stop_reason"),
        "rounds": [_round_json(r, files) for r in rounds],
        "usage": _plain(final["usage"]) if "usage" in final else None, "elapsed_s": round(elapsed, 3),
    }
    if args.save_images:
        result["image_dir"] = args.save_images
    if json_out is not None:
        json_out.write(json.dumps(result, default=_plain) + "\n")
        json_out.flush()
    else:
        console.rule("result")
        if final.get("image") is not None:  # the answer is an image; its text is what made it
            saved = f"{args.save_images}/final.png" if args.save_images else "not saved (--save-images DIR)"
            console.print(f"image of round {final.get('selected_round')}, {len(final['image'])} bytes: {saved}",
                          markup=False)
        else:
            console.print(result["output"], markup=False)
        console.print(f"stop: {result['stop_reason']}  usage: {result['usage']}  time: {elapsed:.2f} s",
                      style="dim", markup=False)
    return 0


# -- parser --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="r3graph", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run vLLM's OpenAI-compatible server with R3's flags",
                       epilog="Flags after `--` go to vLLM untouched, e.g. -- --max-num-seqs 32")
    s.add_argument("--model", default=str(SHIPPED_MODEL_DIR), help="HF-format model directory")
    s.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--served-model-name", default=None, help="default: the model directory's name")
    s.add_argument("--max-model-len", type=int, default=None, help="default: the model's own limit")
    s.add_argument("--startup-timeout", type=float, default=600.0, help="seconds to wait for /health")

    r = sub.add_parser("run", help="run Reason -> Reflect -> Refine on an image, or generate one")
    r.add_argument("--image", action="append", help="image file (repeatable); not with --output image")
    r.add_argument("--instruction", default="Describe the image.", help="the task, or the prompt for --output image")
    r.add_argument("--output", choices=["text", "image"], default="text",
                   help="image: generate from --instruction, judge, edit (needs an image server)")
    r.add_argument("--image-server", default="stand-in",
                   help="vllm-omni base URL (e.g. http://127.0.0.1:8001/v1), or 'stand-in' (default): the "
                   "scene painter in-process, a stand-in for the generator")
    r.add_argument("--image-model", default=None, help="model name sent to the image server")
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
    r.add_argument("--model", default=str(SHIPPED_MODEL_DIR), help="model directory for the in-process engine")
    r.add_argument("--json", action="store_true", help="print one JSON object, nothing else on stdout")
    r.add_argument("--verbose", action="store_true", help="keep vLLM's INFO logs")
    r.add_argument("--trace", choices=["none", "console", "otlp"], default="none",
                   help="export spans: otlp reads the standard OTEL_EXPORTER_OTLP_* variables")

    # Parsed by the paint server itself (main() hands it the rest of the command line).
    sub.add_parser("paint-server", help="the stand-in image generator (scene painter) on 127.0.0.1", add_help=False)

    add_export_parser(sub)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    ours, passthrough = _split_passthrough(sys.argv[1:] if argv is None else argv)
    if ours[:1] == ["paint-server"]:
        from r3graph.scenes.paint_server import main as paint_server

        paint_server(ours[1:])
        return 0
    args = build_parser().parse_args(ours)
    if args.command == "serve":
        return _cmd_serve(args, passthrough)
    if passthrough:
        sys.exit("r3graph: `--` passthrough flags are only for `serve`")
    if args.command == "export":
        return run_export(args)
    return _cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())
