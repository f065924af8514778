"""Read an image file, optionally confined to one folder (``image_root``), with no check-then-use gap.

With a root, the path is walked one component at a time from a descriptor of the root folder, each
component opened with ``O_NOFOLLOW`` relative to its parent's descriptor. A symbolic link is not
followed by the kernel: its target is read and walked the same way, so a link may point anywhere
*inside* the root, and ``..`` can never climb above it. What is checked is what is opened: swapping a
folder for a symlink between two steps changes nothing, because no step goes back to a path name.

Either way the file is opened non-blocking (a FIFO or a device cannot hang the read), refused unless
it is a regular file, and its size is enforced while reading, not only from ``stat``.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque

from r3graph.errors import R3InputError

MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255
MAX_SYMLINK_HOPS = 40  # as the kernel allows
READ_CHUNK = 1 << 20
FILE_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def read_image_file(text: str, *, max_bytes: int, root: str | None, label: str) -> bytes:
    """The file's bytes, or R3InputError saying what to fix."""
    shown = repr(text[:200])
    _check_path_text(text, shown, label)
    try:
        fd = _open_beneath(text, root, shown, label) if root is not None else \
            os.open(os.path.expanduser(text), FILE_FLAGS)
    except R3InputError:
        raise
    except OSError as exc:
        raise R3InputError(f"{label}: {_why(exc, shown)}") from exc
    try:
        return _read_regular(fd, max_bytes, shown, label)
    finally:
        os.close(fd)


def _check_path_text(text: str, shown: str, label: str) -> None:
    if not text:
        raise R3InputError(f"{label}: no such image file: '' (the path is empty)")
    if "\x00" in text:
        raise R3InputError(f"{label}: the path {shown} contains a NUL byte; no file name can")
    try:
        encoded = os.fsencode(text)
    except UnicodeError as exc:
        raise R3InputError(f"{label}: the path {shown} cannot be encoded as a file name ({exc})") from exc
    if len(encoded) > MAX_PATH_BYTES:
        raise R3InputError(f"{label}: the path is {len(encoded)} bytes long; the limit is {MAX_PATH_BYTES}")
    if any(len(part) > MAX_NAME_BYTES for part in encoded.split(b"/")):
        raise R3InputError(f"{label}: a name in the path {shown} is longer than {MAX_NAME_BYTES} bytes")


def _why(exc: OSError, shown: str) -> str:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return f"no such image file: {shown}"
    if exc.errno in (errno.ENXIO, errno.EOPNOTSUPP):  # a UNIX socket, or a device with no driver
        return f"{shown} is not a regular file (a socket or a device); pass an image file"
    if exc.errno == errno.ELOOP:
        return f"the path {shown} goes through a loop of symbolic links"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied reading {shown}"
    if exc.errno == errno.ENAMETOOLONG:
        return f"the path {shown} is too long"
    return f"cannot read {shown}: {exc.strerror or exc}"


def _read_regular(fd: int, max_bytes: int, shown: str, label: str) -> bytes:
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        raise R3InputError(f"{label}: no such image file: {shown} is a folder")
    if not stat.S_ISREG(info.st_mode):
        raise R3InputError(f"{label}: {shown} is not a regular file (a FIFO, socket or device); pass an image file")
    if info.st_size > max_bytes:
        raise R3InputError(f"{label}: {shown} is larger than max_image_bytes={max_bytes}")
    chunks, size = [], 0
    while chunk := os.read(fd, READ_CHUNK):
        size += len(chunk)
        if size > max_bytes:  # the file grew after fstat
            raise R3InputError(f"{label}: {shown} is larger than max_image_bytes={max_bytes}")
        chunks.append(chunk)
    return b"".join(chunks)


def _inside(path: str, prefixes: list[str]) -> str | None:
    """``path`` relative to the first prefix it lies under (textually), else None."""
    for prefix in prefixes:
        if path == prefix:
            return ""
        if path.startswith(prefix.rstrip("/") + "/"):
            return path[len(prefix.rstrip("/")) + 1:]
    return None


def _open_beneath(text: str, root: str, shown: str, label: str) -> int:
    outside = R3InputError(f"{label}: {shown} is outside the allowed image folder (image_root)")
    root_given = os.path.abspath(os.path.expanduser(root))
    root_real = os.path.realpath(root_given)  # the operator's folder: links in its own path are trusted
    prefixes = [root_real, root_given]
    path = os.path.expanduser(text)
    relative = _inside(path if os.path.isabs(path) else os.path.join(os.getcwd(), path), prefixes)
    if relative is None:
        raise outside
    try:
        root_fd = os.open(root_real, DIR_FLAGS)
    except OSError as exc:
        raise R3InputError(f"{label}: the image folder (image_root) cannot be opened: {exc.strerror}") from exc
    stack = [root_fd]  # descriptors of the folders walked so far; stack[0] is the root
    pending = deque(part for part in relative.split("/") if part not in ("", "."))
    hops = 0
    try:
        while pending:
            name = pending.popleft()
            if name == "..":
                if len(stack) == 1:
                    raise outside
                os.close(stack.pop())
                continue
            last = not pending
            try:
                fd = os.open(name, (FILE_FLAGS if last else DIR_FLAGS) | NOFOLLOW, dir_fd=stack[-1])
            except OSError as exc:
                target = _link_target(exc, name, stack[-1])
                if target is None:
                    raise
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise R3InputError(f"{label}: the path {shown} goes through a loop of symbolic links") from exc
                if os.path.isabs(target):
                    inner = _inside(target, prefixes)
                    if inner is None:
                        raise outside from exc
                    while len(stack) > 1:
                        os.close(stack.pop())
                    target = inner
                pending.extendleft(reversed([p for p in target.split("/") if p not in ("", ".")]))
                continue
            if last:
                return fd
            stack.append(fd)
        raise R3InputError(f"{label}: no such image file: {shown} is a folder")
    finally:
        for fd in stack:
            os.close(fd)


def _link_target(exc: OSError, name: str, dir_fd: int) -> str | None:
    """The target if ``name`` is a symbolic link (what O_NOFOLLOW refused to follow), else None."""
    if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return None
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError:
        return None
