"""A run that dies after reflect resumes from SQLite or Postgres on the same thread, without redoing
reason/reflect.

    python examples/checkpoint_resume.py                          # both phases, scripted model
    python examples/checkpoint_resume.py --phase crash --hard-kill --db /tmp/r3.sqlite
    python examples/checkpoint_resume.py --phase resume --db /tmp/r3.sqlite   # a new process
    python examples/checkpoint_resume.py --db postgresql://user@host/db       # Postgres instead

Phase 1 runs R3 with a SQLite (or, with a ``postgresql://`` URL, Postgres) checkpointer and dies as
refine calls the model: an exception, or with ``--hard-kill`` the process exits on the spot
(``os._exit``, no clean-up at all). Phase 2 (a fresh model, graph and connection, as in a new
process) calls ``ainvoke(None, config)`` on the same ``thread_id``: LangGraph loads the last
checkpoint, which is after reflect, so only refine runs.

``durability="sync"`` makes each step's checkpoint durable before the next step starts; with the
default ("async") a hard kill may lose the last step's checkpoint. Model calls are counted per graph
node with a LangChain callback, so the counts hold for any backend (scripted, engine or server).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import RunnableConfig

from r3graph import R3Context, R3Error, R3Input, build_r3_graph
from r3graph.backends import Backend, BackendKind, make_backend
from r3graph.checkpointing import open_checkpointer
from r3graph.graphs import default_retry_policy
from r3graph_scenes.assets import EXAMPLE_PNG

HARD_KILL_STATUS = 70


class SimulatedCrash(RuntimeError):
    """Stands for the process dying; not transient, so the retry policy does not retry it."""


class CallCounter(BaseCallbackHandler):
    """Counts chat model calls by the LangGraph node that made them; optionally dies in one node."""

    raise_error = True  # let the simulated crash out of the callback (LangChain swallows it otherwise)

    def __init__(self, crash_in: str | None = None, hard_kill: bool = False) -> None:
        self.by_node: Counter[str] = Counter()
        self.crash_in, self.hard_kill = crash_in, hard_kill

    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[Any]], *,
                            metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        node = str((metadata or {}).get("langgraph_node", "?"))
        self.by_node[node] += 1
        if node == self.crash_in:
            if self.hard_kill:
                print(f"phase 1: killing the process as {node} calls the model", flush=True)
                os._exit(HARD_KILL_STATUS)  # no exception handlers, no flushing: a real crash
            raise SimulatedCrash(f"the process died in {node}")


def counts(counter: CallCounter) -> str:
    return ", ".join(f"{node}={n}" for node, n in sorted(counter.by_node.items())) or "none"


async def phase(backend: Backend, db: Path | str, thread: str, *, crash: bool,
                hard_kill: bool = False) -> dict[str, Any]:
    """One process's worth of work; returns what it saw (for tests and printing)."""
    counter = CallCounter(crash_in="refine" if crash else None, hard_kill=hard_kill)
    config: RunnableConfig = {"configurable": {"thread_id": thread}, "callbacks": [counter]}
    context = R3Context(max_rounds=1)
    async with open_checkpointer(db) as saver:  # a SQLite file or a postgresql:// URL
        # One attempt: a crash is not something a retry should paper over in this demo.
        graph = build_r3_graph(backend.model, pack=backend.pack,
                               retry_policy=default_retry_policy(1)).compile(checkpointer=saver)
        inputs: R3Input | None = {"instruction": "Describe the image.", "images": [str(EXAMPLE_PNG)]} if crash else None
        try:
            result = await graph.ainvoke(inputs, config, context=context, durability="sync")
        except R3Error as exc:
            snapshot = await graph.aget_state(config)
            return {"crashed": True, "calls": dict(counter.by_node), "error": str(exc),
                    "next": list(snapshot.next), "best_draft": exc.best_draft}
    return {"crashed": False, "calls": dict(counter.by_node), "output": result["output"],
            "stop_reason": result["stop_reason"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase", choices=["both", "crash", "resume"], default="both")
    parser.add_argument("--db", help="SQLite file or postgresql:// URL (default: a new temporary SQLite file)")
    parser.add_argument("--thread", default="checkpoint-demo", help="the thread_id both phases share")
    parser.add_argument("--hard-kill", action="store_true", help="phase 1 exits the process instead of raising")
    parser.add_argument("--engine", action="store_true", help="the shipped model in an in-process vLLM engine")
    parser.add_argument("--base-url", help="a running vLLM server instead")
    args = parser.parse_args(argv)
    kind: BackendKind = "server" if args.base_url else "engine" if args.engine else "scripted"
    db = args.db or str(Path(tempfile.mkdtemp(prefix="r3-checkpoints-")) / "r3.sqlite")
    print(f"R3 model: {make_backend(kind, base_url=args.base_url).label}")
    print(f"checkpoints: {db} (thread {args.thread})")
    try:
        if args.phase in ("both", "crash"):
            seen = asyncio.run(phase(make_backend(kind, base_url=args.base_url), db, args.thread, crash=True,
                                     hard_kill=args.hard_kill))
            print(f"phase 1: {seen['error']}")
            print(f"phase 1: model calls by node: {counts_of(seen)}; next to run: {seen['next']}")
        if args.phase in ("both", "resume"):
            # A fresh backend: nothing from phase 1 survives but the SQLite file.
            seen = asyncio.run(phase(make_backend(kind, base_url=args.base_url), db, args.thread, crash=False))
            print(f"phase 2 (resumed): model calls by node: {counts_of(seen)}")
            print(f"phase 2: {seen['stop_reason']}: {seen['output']}")
    finally:
        if kind == "engine":
            from r3graph.serving import shutdown_engines

            shutdown_engines()
    return 0


def counts_of(seen: dict[str, Any]) -> str:
    return ", ".join(f"{node}={n}" for node, n in sorted(seen["calls"].items())) or "none"


if __name__ == "__main__":
    sys.exit(main())
