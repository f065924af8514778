"""A person reviews each reflection before refine: approve it, edit the critique, or stop.

    python examples/human_review.py                   # asks on stdin
    python examples/human_review.py --auto-approve    # non-interactive
    python examples/human_review.py --edit "the red shape is a star, not a circle"
    python examples/human_review.py --stop            # keep the first draft
    python examples/human_review.py --auto-approve --db postgresql://user@host/db   # pauses kept in Postgres

``R3Context(review=True)`` makes the graph pause (LangGraph ``interrupt``) between reflect and
refine; the pause needs a checkpointer, here in memory (or SQLite / Postgres with ``--db``). The run
comes back with ``__interrupt__`` holding the draft and the critique; ``Command(resume=...)``
continues it on the same thread with the decision: ``True`` (approve), a string (the critique refine
should use instead) or ``{"action": "stop"}`` (accept the draft as it is). With more rounds, each
one pauses again.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from r3graph import R3Context, R3Input, build_r3_graph
from r3graph.backends import Backend, BackendKind, make_backend
from r3graph.checkpointing import open_checkpointer
from r3graph_scenes.assets import EXAMPLE_PNG

Decide = Callable[[dict[str, Any]], Any]


def show(payload: dict[str, Any]) -> None:
    print(f"\n--- review before refine (round {payload['round']}) ---")
    print(f"draft:    {payload['draft']}")
    print("critique:")
    for line in payload["critique"].splitlines() or ["(none)"]:
        print(f"  {line}")


def ask_on_stdin(payload: dict[str, Any]) -> Any:
    """[a]pprove, [e]dit (type the new critique), [s]top. EOF (no terminal) approves."""
    while True:
        try:
            answer = input("approve [a], edit [e] or stop [s]? ").strip().lower()
        except EOFError:
            return True
        if answer in ("", "a", "approve"):
            return True
        if answer in ("s", "stop"):
            return {"action": "stop"}
        if answer in ("e", "edit"):
            text = input("new critique for refine: ").strip()
            if text:
                return text


async def review_run(backend: Backend, decide: Decide, *, max_rounds: int = 1,
                     thread: str = "review-demo", db: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run to the end, asking ``decide`` at every pause; returns the result and the pauses seen.

    With ``db`` (a SQLite file or ``postgresql://`` URL) every pause is a durable checkpoint: each
    resume opens a fresh connection and graph, as a reviewer's answer arriving at another worker
    process would."""
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    context = R3Context(max_rounds=max_rounds, review=True)
    pauses: list[dict[str, Any]] = []
    step: R3Input | Command[Any] = {"instruction": "Describe the image.", "images": [str(EXAMPLE_PNG)]}
    async with open_checkpointer(None) as memory:
        while True:
            async with open_checkpointer(db) if db else nullcontext(memory) as checkpointer:
                graph = build_r3_graph(backend.model, pack=backend.pack).compile(checkpointer=checkpointer)
                result = await graph.ainvoke(step, config, context=context)
            pending = result.get("__interrupt__")
            if not pending:
                return result, pauses
            payload = pending[0].value
            pauses.append(payload)
            show(payload)
            decision = decide(payload)
            print(f"decision: {decision!r}")
            step = Command(resume=decision)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--auto-approve", action="store_true", help="approve every reflection")
    how.add_argument("--edit", metavar="TEXT", help="replace every critique with TEXT")
    how.add_argument("--stop", action="store_true", help="stop at the first review, keeping the draft")
    parser.add_argument("--max-rounds", type=int, default=1)
    parser.add_argument("--db", help="keep the pauses in a SQLite file or postgresql:// URL (default: memory)")
    parser.add_argument("--engine", action="store_true", help="the shipped model in an in-process vLLM engine")
    parser.add_argument("--base-url", help="a running vLLM server instead")
    args = parser.parse_args(argv)
    decide: Decide = ask_on_stdin
    if args.auto_approve:
        decide = lambda payload: True  # noqa: E731
    elif args.edit:
        decide = lambda payload: args.edit  # noqa: E731
    elif args.stop:
        decide = lambda payload: {"action": "stop"}  # noqa: E731
    kind: BackendKind = "server" if args.base_url else "engine" if args.engine else "scripted"
    backend = make_backend(kind, base_url=args.base_url)
    print(f"R3 model: {backend.label}")
    try:
        result, _ = asyncio.run(review_run(backend, decide, max_rounds=args.max_rounds, db=args.db))
    finally:
        if backend.kind == "engine":
            from r3graph.serving import shutdown_engines

            shutdown_engines()
    reviewed = [r.reflection.reviewed for r in result["rounds"] if r.reflection and r.reflection.reviewed]
    print(f"\nresult ({result['stop_reason']}; reviews: {', '.join(reviewed) or 'none'}):")
    print(f"  {result['output']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
