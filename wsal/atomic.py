"""Atomic file writes, their leftovers, and a lock for artifacts that several runs share.

- :func:`atomic_path` / :func:`atomic_write_text` / :func:`atomic_write_json`: write to a temp
  file beside the target, then rename (DESIGN §4). Nothing half-written is ever left at the target
  path, and the result gets ordinary permissions (``0o666 & ~umask``; ``tempfile.mkstemp`` alone
  would leave it private, 0600).
- :func:`temp_tag` / :func:`remove_stale_temps`: a temp name carries its writer's process id and
  host (``.<name>.tmp<pid>.<host>...``), so that the next run of the same writer can tell the
  leftovers of a killed write (owner gone) from a write in progress, and delete them.
- :func:`file_lock`: an exclusive lock on ``<artifact>.lock`` (``fcntl.flock``, released by the
  kernel when its holder dies, so a killed run never leaves a stale lock). Concurrent runs that
  share a data folder take it around "build unless it exists": the first builds, the others wait
  and then reuse what it built.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_path",
    "atomic_write_text",
    "atomic_write_json",
    "temp_tag",
    "pid_alive",
    "remove_stale_temps",
    "file_lock",
]

log = logging.getLogger(__name__)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path in ``path``'s folder (with ``suffix``, default ``path``'s, so that writers
    choosing a format by extension work); rename it to ``path`` on success, delete it on error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{temp_tag()}-",
        suffix=suffix or path.suffix or ".tmp",
        dir=path.parent,
    )
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | os.PathLike, data: Any, indent: int | None = None) -> None:
    atomic_write_text(path, json.dumps(data, indent=indent))


# ------------------------------------------------------------------------ leftovers of kills
#: This host, short: temp names made on another host (a shared file system) are never judged
#: by the process ids of this one.
HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]

# after ``.<name>.``: ``tmp<pid>.<host>`` (this module's), ``tmp<pid>`` (a writer that names only
# its pid) or ``tmp-`` / ``old-`` (no owner recorded)
_TAG = re.compile(r"(?:tmp|old)(?P<pid>\d+)?(?:\.(?P<host>[0-9a-f]{6}))?(?=$|[-.])")


def temp_tag() -> str:
    """``tmp<pid>.<host>``: what a temp name holds so that :func:`remove_stale_temps` can tell
    whether its writer is still alive."""
    return f"tmp{os.getpid()}.{HOST}"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a process of another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(
    folder: str | os.PathLike, name: str, *, older_than: float | None = None
) -> list[Path]:
    """Delete the temp files/folders that killed writes of ``name`` left in ``folder``; return
    them.

    A temp of ``name`` is called ``.<name>.tmp...`` or ``.<name>.old...`` (:func:`atomic_path`,
    the checkpoint writer, the SynthActors generator). It is stale when its name records a
    process id of this host that no longer runs (and is not this process), or, when it records
    no owner, when it was last modified before ``older_than`` (seconds since the epoch, e.g.
    the writer's start; None: such temps are kept). Temps of live writers and of other hosts are
    kept. Call it where the writer starts, before it writes.
    """
    folder = Path(folder)
    prefix = f".{name}."
    removed: list[Path] = []
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(prefix)]
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for e in entries:
        m = _TAG.match(e.name, len(prefix))
        if m is None:
            continue
        pid, host = m.group("pid"), m.group("host")
        if pid is not None:
            if host not in (None, HOST) or int(pid) == os.getpid() or pid_alive(int(pid)):
                continue
        else:
            try:
                if older_than is None or e.stat(follow_symlinks=False).st_mtime >= older_than:
                    continue
            except FileNotFoundError:
                continue
        path = Path(e.path)
        try:
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue
        log.info("removed %s, left by a killed write", path)
        removed.append(path)
    return removed


# ------------------------------------------------------------------------------------ the lock
_HELD: dict[tuple[int, str], int] = {}  # (pid, lock file) -> depth: re-entry in one process


def _make_parents(folder: Path) -> list[Path]:
    """``mkdir -p folder``; the folders it created, outermost first."""
    missing = []
    d = folder
    while not d.exists():
        missing.append(d)
        d = d.parent
    folder.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


@contextlib.contextmanager
def file_lock(artifact: str | os.PathLike, what: str | None = None) -> Iterator[Path]:
    """Hold an exclusive lock on ``<artifact>.lock`` for the body (blocking until it is free).

    Use it around "reuse ``artifact`` if it exists, else build it": concurrent processes then
    build it once; the others wait (saying so once, on this module's logger, naming ``what``)
    and find it built. ``fcntl.flock``: the kernel releases the lock when its holder exits or is
    killed, so there is no stale lock to detect. On release the lock file is removed, and so are
    the folders taking the lock created, when they are still empty (a build that failed leaves
    nothing behind); a waiter that got the lock on a removed file retries on a new one.
    Re-entrant within one process (an inner take of a held lock is a no-op). Yields the lock
    file's path.
    """
    lock = Path(f"{os.fspath(artifact)}.lock").absolute()
    held = (os.getpid(), str(lock))
    if held in _HELD:
        _HELD[held] += 1
        try:
            yield lock
        finally:
            _HELD[held] -= 1
        return
    created: list[Path] = []
    waited = False
    while True:
        created += _make_parents(lock.parent)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not waited:
                    log.info(
                        "waiting for another process building %s (lock %s)", what or artifact, lock
                    )
                    waited = True
                t = time.monotonic()
                fcntl.flock(fd, fcntl.LOCK_EX)
                log.info("%s: lock released after %.1f s", lock, time.monotonic() - t)
            try:  # the holder we waited for removed the file: lock the new one instead
                current = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
        except BaseException:
            os.close(fd)
            raise
        if current:
            break
        os.close(fd)
    _HELD[held] = 1
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())  # for a curious reader
        yield lock
    finally:
        del _HELD[held]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        for d in reversed(created):  # innermost first; stops at the first folder in use
            try:
                d.rmdir()
            except OSError:
                break
        os.close(fd)
