"""The private PostgreSQL server the Postgres tests and benchmarks use: loopback only (a Unix socket in
its own temporary folder, no TCP port), real enough for LangGraph's saver and store, gone afterwards."""

from __future__ import annotations

import asyncio

import psutil
import psycopg
import pytest

from r3graph.postgres import LocalPostgres, PostgresError, postgres_persistence


def test_local_postgres_listens_on_a_private_socket_only_and_leaves_nothing() -> None:
    with LocalPostgres() as pg:
        assert pg._proc is not None and pg.root is not None
        pid, root = pg._proc.pid, pg.root
        with psycopg.connect(pg.conn_string) as conn:
            assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
        assert (root / ".s.PGSQL.5432").is_socket()
        assert psutil.Process(pid).net_connections(kind="inet") == []  # the postmaster listens on no TCP port

        async def saver_and_store() -> object:
            async with postgres_persistence(pg.conn_string) as (_saver, store):
                await store.aput(("r3",), "k", {"v": 1})
                return (await store.aget(("r3",), "k")).value  # type: ignore[union-attr]

        assert asyncio.run(saver_and_store()) == {"v": 1}
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not root.exists()


def test_missing_postgres_binaries_say_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("R3GRAPH_PG_BINDIR", str(tmp_path))
    with pytest.raises(PostgresError, match="has no initdb"):
        LocalPostgres().start()
