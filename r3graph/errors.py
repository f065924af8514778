"""Typed errors. Every error raised out of a run is an :class:`R3Error`.

Errors raised after the first draft exists carry the work done so far (``best_draft`` and the
completed ``rounds``) so that a failure mid-run never loses it.
"""

from __future__ import annotations

from typing import Any


class R3Error(Exception):
    """Base class. ``best_draft``/``best_image``/``rounds`` hold the work completed before the failure."""

    def __init__(
        self,
        message: str,
        *,
        best_draft: str | None = None,
        rounds: list[dict[str, Any]] | None = None,
        stage: str | None = None,
        best_image: bytes | None = None,
    ) -> None:
        super().__init__(message)
        self.best_draft = best_draft
        self.best_image = best_image  # output mode "image": the best round's PNG
        self.rounds = list(rounds or [])
        self.stage = stage


class R3ValidationError(R3Error, ValueError):
    """Bad input or a bad per-request context; raised before any model call."""


class R3InputError(R3ValidationError):
    """An image or instruction that cannot be used (unreadable, unsupported, too large...)."""


class R3ConfigError(R3ValidationError):
    """A bad context field, unknown strategy or prompt pack."""


class R3ModelError(R3Error):
    """A model call failed (after the retries the graph's RetryPolicy allowed).

    ``transient`` tells the retry policy whether another attempt can help (timeouts, 5xx, dropped
    connections) or not (a 4xx, a prompt longer than the context).
    """

    def __init__(self, message: str, *, transient: bool = False, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.transient = transient


class R3TimeoutError(R3ModelError):
    """The run's deadline (``run_timeout_s``) passed; retrying cannot help."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, transient=False, **kwargs)


class R3ReflectError(R3Error):
    """A reflect strategy failed or returned something unusable."""
