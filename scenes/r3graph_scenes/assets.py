"""The bundled example scene used by the quick start and the tests.

Run ``python -m r3graph_scenes.assets`` to (re)write ``assets/example.png`` (the 64x64 model
input), ``assets/example_256.png`` (for people) and ``assets/example.json`` (ground truth).
The scene is the first one from seed 0 with 3 objects, all named uniquely, and 2 relations, so it
exercises objects and relations alike; it is derived, not hand-picked, so it can be rebuilt.
"""

import random
from pathlib import Path

from r3graph_scenes.world import Scene, generate_scene, render

ASSETS_DIR = Path(__file__).with_name("assets")
EXAMPLE_PNG = ASSETS_DIR / "example.png"
EXAMPLE_256_PNG = ASSETS_DIR / "example_256.png"
EXAMPLE_JSON = ASSETS_DIR / "example.json"
EXAMPLE_SEED = 0


def example_scene() -> Scene:
    """The example scene, rebuilt from ``EXAMPLE_SEED``."""
    rng = random.Random(EXAMPLE_SEED)
    while True:
        scene = generate_scene(rng, n_objects=3)
        if len(scene.relations) == 2 and max(scene.kind_counts().values()) == 1:
            return scene


def load_example() -> Scene:
    """The bundled ground truth (what ``example.png`` shows)."""
    return Scene.from_json(EXAMPLE_JSON.read_text())


def write_example_assets(directory: Path = ASSETS_DIR) -> list[Path]:
    """Write the example image at 64 and 256 px and its ground truth JSON; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    scene = example_scene()
    paths = [directory / EXAMPLE_PNG.name, directory / EXAMPLE_256_PNG.name, directory / EXAMPLE_JSON.name]
    render(scene, 64).save(paths[0])
    render(scene, 256).save(paths[1])
    paths[2].write_text(scene.to_json(indent=2) + "\n")
    return paths


if __name__ == "__main__":
    for path in write_example_assets():
        print(path)
