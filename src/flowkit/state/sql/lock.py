"""Per-recipe run locks: an exclusive `flock` on a file next to the state database.

`flock(2)` locks belong to the open file description and are released when it is closed,
so the kernel frees them when the holder dies, even on kill -9: no stale locks, no leases.
Lock files are never deleted: removing one that another process has open would let two
processes lock two different inodes. References: https://linux.die.net/man/2/flock,
https://man7.org/linux/man-pages/man1/flock.1.html, https://docs.python.org/3/library/fcntl.html.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
from pathlib import Path

from flowkit.errors import LockHeld, StateError
from flowkit.state.sql.errors import Clock

POLL = 0.05  # seconds between attempts while waiting for a held lock


def make_private_dirs(directory: Path) -> None:
    """Create `directory` and its missing parents with mode 0700 (Path.mkdir gives the
    parents default permissions)."""
    missing: list[Path] = []
    while not directory.exists():
        missing.append(directory)
        if directory.parent == directory:
            break
        directory = directory.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)


def lock_path(db_path: str | os.PathLike[str], recipe: str) -> Path:
    """`<db>.<sanitized recipe, ≤48 chars>.<8 hex of sha256(recipe)>.lock` next to the db."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", recipe)[:48].strip("_") or "recipe"
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:8]
    db = Path(db_path)
    return db.with_name(f"{db.name}.{safe}.{digest}.lock")


class FileLock:
    """A held recipe lock; `release()` unlocks and closes, and is idempotent."""

    def __init__(self, fd: int, path: Path, recipe: str) -> None:
        self._fd: int | None = fd
        self.path = path
        self.recipe = recipe

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> FileLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"FileLock({str(self.path)!r}, held={self.held})"


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f", held by pid {pid}" if pid.isdigit() else ""


def acquire(db_path: str | os.PathLike[str], recipe: str, wait: float, clock: Clock) -> FileLock:
    """Take the recipe's lock, polling until `wait` seconds pass, else raise LockHeld."""
    path = lock_path(db_path, recipe)
    try:
        make_private_dirs(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StateError(f"cannot create the lock file {path}: {exc.strerror}") from exc
    deadline = clock.monotonic() + max(0.0, wait)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            now = clock.monotonic()
            if now >= deadline:
                holder = _holder(fd)
                os.close(fd)
                raise LockHeld(
                    f"another `flowkit run` of recipe '{recipe}' is in progress (lock file "
                    f"{path}{holder}); nothing was done"
                ) from None
            clock.sleep(min(POLL, deadline - now))
        except OSError as exc:
            os.close(fd)
            raise StateError(f"cannot lock {path}: {exc.strerror}") from exc
    # Informational only: lets a process that finds the lock taken name the holder.
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return FileLock(fd, path, recipe)
