"""R3 state in PostgreSQL: LangGraph's Postgres checkpointer and store, and a throwaway local server.

Several worker processes (or LangGraph server workers) share runs through Postgres: a run that
died in one worker resumes in another from its last checkpoint, on the same ``thread_id``::

    from r3graph.postgres import postgres_persistence

    async with postgres_persistence("postgresql://user@host/db") as (checkpointer, store):
        graph = build_r3_graph(model).compile(checkpointer=checkpointer, store=store)
        await graph.ainvoke(inputs, {"configurable": {"thread_id": "run-42"}}, context=R3Context(...))

:class:`LocalPostgres` runs a private server for tests, benchmarks and trying things out: ``initdb``
into a temporary folder, ``postgres`` listening on a Unix socket in that folder only (no TCP port),
stopped and deleted at the end. It needs the PostgreSQL server binaries (Debian: ``postgresql``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Self

from r3graph.checkpointing import checkpoint_serde
from r3graph.serving.process import Managed, die_with_parent, stop_process_group

_PORT = 5432  # names the socket file (.s.PGSQL.5432) in our private folder; no TCP port is opened


@asynccontextmanager
async def postgres_persistence(conn_string: str) -> AsyncIterator[tuple[Any, Any]]:
    """``(AsyncPostgresSaver, AsyncPostgresStore)`` on ``conn_string``, tables created if missing.

    The saver reads R3's state types back without warnings (:func:`checkpoint_serde`).
    Needs ``langgraph-checkpoint-postgres`` and ``psycopg`` (``pip install 'r3graph[postgres]'``).
    """
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from langgraph.store.postgres.aio import AsyncPostgresStore

    async with (
        AsyncPostgresSaver.from_conn_string(conn_string, serde=checkpoint_serde()) as saver,
        AsyncPostgresStore.from_conn_string(conn_string) as store,
    ):
        await saver.setup()
        await store.setup()
        yield saver, store


class PostgresError(RuntimeError):
    """The local server could not be set up or started; says what is missing."""


def postgres_bindir() -> Path:
    """Where ``initdb`` and ``postgres`` are: ``$R3GRAPH_PG_BINDIR``, PATH, or Debian's layout."""
    if env := os.environ.get("R3GRAPH_PG_BINDIR"):
        if not (Path(env) / "initdb").is_file():
            raise PostgresError(f"R3GRAPH_PG_BINDIR={env} has no initdb: point it at PostgreSQL's bin folder")
        return Path(env)
    if found := shutil.which("initdb"):
        return Path(found).resolve().parent  # Debian links initdb into PATH; the rest sits beside it
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if versions:
        return Path(versions[-1]).parent
    raise PostgresError("PostgreSQL server binaries not found (initdb, postgres): install them "
                        "(Debian/Ubuntu: apt-get install postgresql) or set R3GRAPH_PG_BINDIR")


def _as_user(name: str) -> tuple[Callable[[], None] | None, int | None]:
    """PostgreSQL refuses to run as root: when we are root, run it as ``name`` (Debian's package
    creates the ``postgres`` user). Returns the preexec function and the uid to own the data."""
    if os.geteuid() != 0:
        return die_with_parent, None
    try:
        user = pwd.getpwnam(name)
    except KeyError as exc:
        raise PostgresError(f"running as root and there is no {name!r} user for PostgreSQL to run as") from exc

    def drop() -> None:
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
        die_with_parent()  # after setuid, which clears the parent-death signal

    return drop, user.pw_uid


class LocalPostgres(Managed):
    """``with LocalPostgres() as pg: pg.conn_string`` -> a fresh database, gone afterwards."""

    def __init__(self, *, user: str = "r3graph", database: str = "r3graph", run_as: str = "postgres",
                 startup_timeout: float = 60.0) -> None:
        self.user, self.database, self.run_as = user, database, run_as
        self.startup_timeout = startup_timeout
        self.root: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None, "not started"
        return self.root

    @property
    def conn_string(self) -> str:
        # libpq: a host that is a directory means the Unix socket in it.
        return f"postgresql://{self.user}@/{self.database}?host={self.socket_dir}&port={_PORT}"

    def _run(self, args: list[str], preexec: Callable[[], None] | None) -> None:
        done = subprocess.run(args, capture_output=True, text=True, preexec_fn=preexec, timeout=120)
        if done.returncode != 0:
            raise PostgresError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip()[-800:]}")

    def start(self) -> Self:
        bindir = postgres_bindir()
        preexec, uid = _as_user(self.run_as)
        self.root = Path(tempfile.mkdtemp(prefix="r3graph-pg-"))
        data = self.root / "data"
        if uid is not None:
            os.chown(self.root, uid, -1)
        try:
            self._run([str(bindir / "initdb"), "-D", str(data), "-U", self.user, "--auth=trust",
                       "--no-sync", "-E", "UTF8", "--locale=C"], preexec)
            with (self.root / "postgres.log").open("wb") as log:
                self._proc = subprocess.Popen(
                    [str(bindir / "postgres"), "-D", str(data), "-k", str(self.root), "-p", str(_PORT),
                     "-c", "listen_addresses=", "-c", "fsync=off", "-c", "max_connections=200"],
                    stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL,
                    start_new_session=True, preexec_fn=preexec,
                )
            self._wait_ready(bindir)
            self._run([str(bindir / "createdb"), "-h", str(self.root), "-p", str(_PORT), "-U", self.user,
                       self.database], None)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, bindir: Path) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._proc.poll() is not None:
                raise PostgresError(f"postgres exited with code {self._proc.returncode}: {self.log_tail()}")
            ready = subprocess.run([str(bindir / "pg_isready"), "-q", "-h", str(self.root), "-p", str(_PORT)],
                                   check=False)
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise PostgresError(f"postgres not ready after {self.startup_timeout:.0f} s: {self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self, n: int = 20) -> str:
        log = self.root / "postgres.log" if self.root else None
        if log is None or not log.is_file():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-n:])

    def stop(self, grace: float = 20.0) -> None:
        """Fast shutdown (SIGINT: roll back open transactions), SIGKILL after ``grace``; delete the folder."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process_group(proc, signal.SIGINT, grace)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


if __name__ == "__main__":  # python -m r3graph.postgres: a server to try things with, until Ctrl-C
    with LocalPostgres() as pg:
        print(pg.conn_string, flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            print("stopping postgres", file=sys.stderr)
