"""Atomic file writes: every file initlab writes (models, reports, figures, tables) goes to a
temporary file in the target directory, is flushed to disk, and is renamed into place, so an
interrupted write (an exception, Ctrl-C, SIGKILL, a full disk) leaves the old file or the new one,
never a half-written one.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Any, Iterator, Tuple

TEMP_PREFIX = ".initlab-"  # hidden, and recognisable as ours if a killed process leaves one behind


def target_path(path: Any, who: str) -> Tuple[str, str]:
    """`(path, its directory)` for an atomic write, or an error naming the path: the temporary
    file's name would otherwise be all that a missing directory's FileNotFoundError shows."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"{who}: path must be a str or os.PathLike, got {type(path).__name__} "
                        f"{path!r}") from None
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{who}: cannot write {path!r}: directory {directory!r} does "
                                f"not exist")
    return path, directory


def file_mode() -> int:
    """The permissions a new file gets under the process umask (mkstemp's files are 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_file(path: Any, who: str, suffix: str = ".tmp") -> Iterator[IO[bytes]]:
    """A binary file object whose contents replace `path` only when the block completes.

    >>> with atomic_file("model.npz", "save", suffix=".npz.tmp") as f:   # doctest: +SKIP
    ...     f.write(data)
    """
    path, directory = target_path(path, who)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX, suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bytes_atomically(path: Any, data: bytes, who: str = "write") -> str:
    """Replace `path` with `data` atomically; returns the path."""
    with atomic_file(path, who) as f:
        f.write(data)
    return os.fspath(path)


def write_text_atomically(path: Any, text: str, who: str = "write") -> str:
    """Replace `path` with `text` (UTF-8, newlines as given) atomically; returns the path."""
    return write_bytes_atomically(path, text.encode("utf-8"), who)


def append_line(path: Any, line: str, who: str = "append") -> None:
    """Append one line (a newline is added) to `path` with a single write on an O_APPEND file,
    then fsync: a reader sees the line whole or, if the process is killed during the write, a
    trailing partial line without its newline, which readers of initlab's append-only files
    (`initlab.experiments.record`) drop with a warning."""
    path, _ = target_path(path, who)
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, file_mode())
    try:
        view = memoryview(data)
        while view:                      # os.write may write less than asked (signals, pipes)
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
