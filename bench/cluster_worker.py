"""One worker process of the worker-kill scenario (bench/cluster_load.py): R3 runs against a router,
state in Postgres, every model call logged as it starts.

    python bench/cluster_worker.py --base-url URL --db postgresql://... --threads t1,t2 --mode start --log calls.jsonl
    python bench/cluster_worker.py ... --mode resume    # another process: resume every unfinished thread

``start`` begins a fresh run on each thread (``durability="sync"``: a stage's checkpoint is in Postgres
before the next stage starts, so a kill loses at most the stage in flight). ``resume`` reads each
thread's checkpoint, records which stage is next, and continues with ``ainvoke(None, config)``. The
log has one JSON line per model call ({"thread", "node"}) and one per thread at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import IO, Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import RunnableConfig

from r3graph import R3Context, R3Error, build_r3_graph
from r3graph.checkpointing import open_checkpointer
from r3graph.serving import chat_model_for_server

IMAGE = Path(__file__).resolve().parents[1] / "scenes" / "r3graph_scenes" / "assets" / "example.png"


class CallLog(BaseCallbackHandler):
    """Writes one line per chat model call as it starts (flushed: the process may be killed next)."""

    def __init__(self, out: IO[str], thread: str) -> None:
        self.out, self.thread = out, thread

    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[Any]], *,
                            metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        node = str((metadata or {}).get("langgraph_node", "?"))
        self.out.write(json.dumps({"thread": self.thread, "node": node}) + "\n")
        self.out.flush()


async def one_thread(graph: Any, thread: str, mode: str, log: IO[str], context: R3Context) -> dict[str, Any]:
    config: RunnableConfig = {"configurable": {"thread_id": thread}, "callbacks": [CallLog(log, thread)]}
    record: dict[str, Any] = {"thread": thread, "mode": mode}
    inputs: Any = {"instruction": f"Describe the image ({thread}).", "images": [str(IMAGE)]}
    if mode == "resume":
        snapshot = await graph.aget_state(config)
        record["next"] = list(snapshot.next)
        if not snapshot.next:  # finished before the kill: nothing to do
            record["output"] = snapshot.values.get("output")
            return record
        inputs = None
    try:
        result = await graph.ainvoke(inputs, config, context=context, durability="sync")
        record |= {"output": result["output"], "stop_reason": result["stop_reason"]}
    except R3Error as exc:
        record |= {"error": f"{type(exc).__name__}: {str(exc)[:200]}", "best_draft": exc.best_draft}
    return record


async def main_async(args: argparse.Namespace) -> int:
    chat = chat_model_for_server(args.base_url)
    context = R3Context(reflect="self_questions", max_rounds=1, call_timeout_s=120, run_timeout_s=600)
    with Path(args.log).open("a") as log:  # noqa: ASYNC230 (before any run starts; lines are tiny)
        async with open_checkpointer(args.db) as saver:
            graph = build_r3_graph(chat, pack="scenes").compile(checkpointer=saver)
            records = await asyncio.gather(*(one_thread(graph, t, args.mode, log, context)
                                             for t in args.threads.split(",")))
            for record in records:
                log.write(json.dumps({"final": record}) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--db", required=True, help="postgresql:// URL")
    parser.add_argument("--threads", required=True, help="comma-separated thread ids")
    parser.add_argument("--mode", choices=["start", "resume"], required=True)
    parser.add_argument("--log", required=True, help="JSON lines: one per model call, one per thread at the end")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
