"""``image_root`` under a race: a folder swapped for a symlink to outside while reads happen.

The old check resolved the path, checked it, then opened it by name, so a swap in between read a file
outside the root. The walk from a directory descriptor with ``O_NOFOLLOW`` reads either the file
inside or refuses, whatever the timing: the test counts both outcomes and requires no third.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from r3graph import R3InputError
from r3graph.image_files import read_image_file

INSIDE, SECRET = b"inside-image-bytes", b"SECRET-outside-bytes"
SWAPPER = """
import os, sys
root = sys.argv[1]
sub = os.path.join(root, "sub")
while True:
    for staged in ("real", "evil"):
        try:
            os.rename(os.path.join(root, staged), sub)
            os.rename(sub, os.path.join(root, staged))
        except OSError:
            pass
"""


def test_swapping_a_folder_for_a_symlink_never_reads_outside(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "real").mkdir(parents=True)
    outside.mkdir()
    (root / "real" / "img.png").write_bytes(INSIDE)
    (outside / "img.png").write_bytes(SECRET)
    (root / "evil").symlink_to(outside)
    sub = root / "sub"
    # Another process (true parallelism, as an attacker sharing the folder would have) makes sub a real
    # folder, then nothing, then a link to outside, then nothing, ...
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(root)])
    outcomes = {"inside": 0, "refused": 0}
    end = time.monotonic() + 20  # on a loaded machine the swapper may get few time slices: keep reading
    try:
        while time.monotonic() < end and min(outcomes.values()) < 50:
            try:
                # The path a checker would resolve while sub is the real folder: it names sub/img.png.
                data = read_image_file(str(sub / "img.png"), max_bytes=2**20, root=str(root), label="images[0]")
            except R3InputError as exc:
                assert "outside the allowed image folder" in str(exc) or "no such image file" in str(exc), exc
                outcomes["refused"] += 1
                continue
            assert data == INSIDE, "read a file outside image_root"
            outcomes["inside"] += 1
    finally:
        swapper.kill()
        swapper.wait()
    assert outcomes["inside"] > 0 and outcomes["refused"] > 0, outcomes  # both states were really hit
