"""``image_root`` under a race: a folder swapped for a symlink to outside while reads happen.

The old check resolved the path, checked it, then opened it by name, so a swap in between read a file
outside the root. The walk from a directory descriptor with ``O_NOFOLLOW`` reads either the file
inside or refuses, whatever the timing: the test counts both outcomes and requires no third.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from r3graph import R3InputError
from r3graph.image_files import read_image_file

INSIDE, SECRET = b"inside-image-bytes", b"SECRET-outside-bytes"


def test_swapping_a_folder_for_a_symlink_never_reads_outside(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "real").mkdir(parents=True)
    outside.mkdir()
    (root / "real" / "img.png").write_bytes(INSIDE)
    (outside / "img.png").write_bytes(SECRET)
    (root / "evil").symlink_to(outside)
    sub = root / "sub"
    stop = threading.Event()

    def swapper() -> None:  # sub -> a real folder, then sub -> a link to outside, as fast as possible
        while not stop.is_set():
            for target in (root / "real", root / "evil"):
                tmp = root / "sub.tmp"
                try:
                    os.symlink(os.readlink(target) if target.is_symlink() else target.name, tmp)
                    os.replace(tmp, sub)
                except OSError:
                    pass

    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    outcomes = {"inside": 0, "refused": 0}
    try:
        for _ in range(3000):
            try:
                data = read_image_file(str(sub / "img.png"), max_bytes=2**20, root=str(root), label="images[0]")
            except R3InputError as exc:
                assert "outside the allowed image folder" in str(exc) or "no such image file" in str(exc), exc
                outcomes["refused"] += 1
                continue
            assert data == INSIDE, "read a file outside image_root"
            outcomes["inside"] += 1
    finally:
        stop.set()
        thread.join()
    assert outcomes["inside"] > 0 and outcomes["refused"] > 0, outcomes  # both states were really hit
