"""The scene-world plugin in a checkout where ``r3graph-scenes`` is not installed.

``make setup`` installs both packages, and the core then finds the plugin by its entry point. A venv
made before the split (or one that has only the core, ``PYTHONPATH=$PWD python -m pytest``) has no such
entry point; there the tests find the plugin the other documented way, ``R3GRAPH_PLUGINS``, with
``scenes/`` on the path, for this process and every child it starts (servers, ``r3graph`` commands).
The tests that check the core without any plugin clear both themselves (tests/test_packaging.py).
"""

from __future__ import annotations

import os
import sys

from r3graph import plugins
from tests.helpers import REPO

SCENES_DIR = REPO / "scenes"
SPEC = "r3graph_scenes.plugin:PLUGIN"


def ensure_scenes_plugin() -> str:
    """How the plugin was found: 'installed' or 'R3GRAPH_PLUGINS' (set here)."""
    if str(SCENES_DIR) not in sys.path:
        sys.path.insert(0, str(SCENES_DIR))
    if any(p.name == "scenes" for p in plugins.plugins()):
        return "installed" if not os.environ.get(plugins.ENV) else plugins.ENV
    os.environ[plugins.ENV] = ",".join(filter(None, [os.environ.get(plugins.ENV), SPEC]))
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), str(SCENES_DIR), *paths]))
    plugins.plugins.cache_clear()
    return plugins.ENV
