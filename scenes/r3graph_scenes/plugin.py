"""r3graph-scenes as an r3graph plugin: the shipped models, the scenes pack, ``paint-server`` and the
scripted backend. Declared in ``scenes/pyproject.toml`` (entry-point group ``r3graph.plugins``); the
core finds it there and never imports this package by name.

Importing this module is cheap on purpose (paths and strings only): the core reads it on every
``r3graph`` command.
"""

from pathlib import Path

from r3graph.plugins import R3Plugin

PACKAGE_DIR = Path(__file__).resolve().parent
MODELS_DIR = PACKAGE_DIR / "models"
SCENES_VLM_DIR = MODELS_DIR / "scenes-vlm"  # understanding: captions, answers, judges
SCENES_IMAGEGEN_DIR = MODELS_DIR / "scenes-imagegen"  # generation and edits, as image tokens
SCENES_PACK = PACKAGE_DIR / "packs" / "scenes.json"  # the templates scenes-vlm was trained on

PLUGIN = R3Plugin(
    name="scenes",
    model_dir=SCENES_VLM_DIR,
    image_model_dir=SCENES_IMAGEGEN_DIR,
    packs={"scenes": SCENES_PACK},
    commands={"paint-server": "r3graph_scenes.paint_server:main"},
    image_servers={"stand-in": "r3graph_scenes.paint_server:start_stand_in"},
    backends={"scripted": "r3graph_scenes.scripted:scripted_backend"},
)
