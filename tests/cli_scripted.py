"""``r3graph run`` with the SCRIPTED scene model instead of vLLM, for CLI tests that need a whole run
in a second. Run as ``python -m tests.cli_scripted [--noise] [--fail-at N] run ...``.

``--noise`` makes the backend behave like vLLM's start-up does: a Python warning, a logging record,
a print, and a child process writing to the stderr it inherited. ``--fail-at N`` makes the N-th
model call raise, as a crashed engine would.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings
from typing import Any

import r3graph.cli as cli
from r3graph.backends import make_backend
from r3graph_scenes.scripted import ScriptedSceneModel

NOISE = ("warnings-noise", "logging-noise", "print-noise", "child-noise")


def scripted_backend(noise: bool, fail_at: int | None) -> Any:
    def backend(args: Any) -> Any:
        if noise:
            warnings.warn(NOISE[0], UserWarning, stacklevel=1)
            logging.basicConfig()
            logging.getLogger("vllm").warning(NOISE[1])
            print(NOISE[2])
            subprocess.run([sys.executable, "-c", f"import sys; sys.stderr.write('{NOISE[3]}\\n')"], check=True)
        chosen = make_backend("scripted", pack=args.pack)
        if fail_at is not None:
            original = ScriptedSceneModel._agenerate
            calls = iter(range(1, 1000))

            async def failing(self: Any, *a: Any, **k: Any) -> Any:
                if next(calls) == fail_at:
                    raise RuntimeError("engine core died (simulated)")
                return await original(self, *a, **k)

            ScriptedSceneModel._agenerate = failing  # type: ignore[method-assign]
        return chosen

    return backend


if __name__ == "__main__":
    argv = sys.argv[1:]
    noise = "--noise" in argv
    fail_at = int(argv[argv.index("--fail-at") + 1]) if "--fail-at" in argv else None
    rest = [a for i, a in enumerate(argv) if a != "--noise" and a != "--fail-at" and
            not (i > 0 and argv[i - 1] == "--fail-at")]
    cli._backend_for = scripted_backend(noise, fail_at)
    sys.exit(cli.main(rest))
