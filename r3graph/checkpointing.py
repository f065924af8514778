"""Checkpoint serialisation for R3 state: the msgpack allowlist of r3graph's own types.

LangGraph's checkpoint serializer warns (and, with ``LANGGRAPH_STRICT_MSGPACK=true``, refuses) when it
reads back types nobody allowed. ``compile()`` derives an allowlist from the graph's state schema in
strict mode; in the default permissive mode it does not, so every resume logs a warning per type.
Give checkpointers :func:`checkpoint_serde` to allow exactly R3's state types, in either mode::

    saver = AsyncSqliteSaver(conn, serde=checkpoint_serde())
    saver = InMemorySaver(serde=checkpoint_serde())
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from r3graph.state import CheckPlan, Finding, Reflection, ReflectionUpdate, Round, Usage

CHECKPOINT_TYPES: tuple[type, ...] = (Round, Reflection, Finding, Usage, CheckPlan, ReflectionUpdate)


def checkpoint_allowlist() -> list[tuple[str, str]]:
    return [(t.__module__, t.__name__) for t in CHECKPOINT_TYPES]


def checkpoint_serde() -> JsonPlusSerializer:
    """A serializer that reads R3's state types back without warnings (and nothing else unexpected)."""
    return JsonPlusSerializer(allowed_msgpack_modules=checkpoint_allowlist())


@asynccontextmanager
async def open_checkpointer(where: str | Path | None) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """A checkpointer for ``where``: a ``postgresql://`` URL (shared by every worker process; needs
    langgraph-checkpoint-postgres), a SQLite file (one machine; needs langgraph-checkpoint-sqlite),
    or None for memory (one process). R3's state types read back without warnings in all three."""
    if where is None:
        yield InMemorySaver(serde=checkpoint_serde())
    elif str(where).startswith(("postgresql://", "postgres://")):
        from r3graph.postgres import postgres_persistence

        async with postgres_persistence(str(where)) as (saver, _store):
            yield saver
    else:
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with aiosqlite.connect(str(where)) as connection:
            yield AsyncSqliteSaver(connection, serde=checkpoint_serde())
