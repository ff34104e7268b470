"""One writer per output folder: an exclusive lock file holding the owner's PID, host and start time.

:class:`RunLock` guards a training run folder (``train``) or a reconstruction output
(``reconstruct``) against a second process writing into it at the same time::

    with RunLock(run_dir, purpose="train"):
        ...  # only this process writes into run_dir

How it works: the lock file (``<folder>/.ambient-imaging.lock``) is opened and locked with
``fcntl.flock(LOCK_EX | LOCK_NB)``; the kernel drops that lock when the process ends in any
way (exit, exception, ``kill -9``), so a lock left behind by a dead process is recognised
exactly and taken over (with a note), and a live owner is never displaced. The file's content
(PID, host, start time, command) only serves the error message. Where ``flock`` is not
supported (some network file systems) the lock falls back to the content: a file written on
this host by a PID that no longer runs is stale. A lock file written on another host (a shared
file system) is always trusted, since that host's processes cannot be checked from here: the
message says which file to delete once that process is known to be gone.

The lock is re-entrant within one process (``train`` locks the folder in the CLI and again in
:meth:`~ambient_imaging.training.Trainer.fit`) and released on exit.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import os
import socket
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["RunLock", "RunInUseError", "LOCK_NAME", "lock_owner"]

#: name of the lock file inside the locked folder
LOCK_NAME = ".ambient-imaging.lock"

_HELD: dict[str, tuple[int, int]] = {}  # resolved lock path -> (fd, re-entry count), this process
_GUARD = threading.Lock()


def _release_all_at_exit() -> None:
    """Remove this process's lock files at interpreter exit (the kernel drops the flocks anyway)."""
    with _GUARD:
        for key, (fd, _) in list(_HELD.items()):
            with contextlib.suppress(OSError):
                if os.fstat(fd).st_ino == os.stat(key).st_ino:
                    os.unlink(key)
            with contextlib.suppress(OSError):
                os.close(fd)
            del _HELD[key]


atexit.register(_release_all_at_exit)


class RunInUseError(ValueError):
    """Another live process holds the folder's lock (a ``ValueError``: the CLI prints it as one line)."""

    def __init__(self, message: str, owner: dict[str, Any] | None = None):
        super().__init__(message)
        self.owner = owner or {}


def _describe(owner: dict[str, Any]) -> str:
    pid, host = owner.get("pid", "?"), owner.get("host", "?")
    started = owner.get("started")
    when = ""
    if isinstance(started, (int, float)):
        when = f" (started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}"
        cmd = owner.get("command")
        when += f": {cmd})" if cmd else ")"
    return f"PID {pid} on {host}{when}"


def lock_owner(folder: str | os.PathLike) -> dict[str, Any] | None:
    """What the lock file of ``folder`` says about its owner (``pid``, ``host``, ``started``, ...), or ``None``."""
    try:
        text = (Path(folder) / LOCK_NAME).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        d = json.loads(text)
    except ValueError:
        return None
    return d if isinstance(d, dict) else None


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _proc_start(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), to tell a reused PID apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


class RunLock:
    """Exclusive, re-entrant lock on an output folder (see the module docstring).

    Args:
        folder: the folder to lock (created if missing).
        purpose: a word for messages (``"train"``, ``"reconstruct"``).
        name: the lock file's name inside ``folder``; what: how messages name the locked thing.

    :meth:`acquire` raises :class:`RunInUseError` — ``"run folder X is in use by PID N on HOST
    (started …)"`` — when another live process holds it. ``took_over`` is the owner record of
    a stale lock that was taken over (``None`` otherwise).
    """

    def __init__(self, folder: str | os.PathLike, purpose: str = "write", *, name: str = LOCK_NAME,
                 what: str | None = None):
        self.folder = Path(folder)
        self.purpose = purpose
        self.path = self.folder / name
        self.what = what or f"run folder {self.folder}"
        self.took_over: dict[str, Any] | None = None
        self._key: str | None = None

    @classmethod
    def for_file(cls, path: str | os.PathLike, purpose: str = "write") -> RunLock:
        """Lock one output file (``<dir>/.<name>.ambient-imaging.lock``), not its whole folder.

        For outputs that are single files (``reconstruct --out rec.nc``); two processes may write
        different files into one folder, but not the same file.
        """
        path = Path(path)
        return cls(path.parent, purpose, name=f".{path.name}{LOCK_NAME}", what=f"output {path}")

    # ------------------------------------------------------------------ public
    @property
    def held(self) -> bool:
        """Whether this object currently holds the lock."""
        return self._key is not None

    def acquire(self) -> RunLock:
        """Take the lock (or raise :class:`RunInUseError`); returns ``self``."""
        if self._key is not None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        key = str(self.path.resolve())
        with _GUARD:
            if key in _HELD:  # this process already holds it: re-enter
                fd, n = _HELD[key]
                _HELD[key] = (fd, n + 1)
                self._key = key
                return self
            fd = self._lock_file()
            _HELD[key] = (fd, 1)
            self._key = key
        return self

    def release(self) -> None:
        """Release (the file is removed when the outermost holder in this process releases)."""
        if self._key is None:
            return
        with _GUARD:
            if self._key not in _HELD:  # already released at interpreter exit
                self._key = None
                return
            fd, n = _HELD[self._key]
            if n > 1:
                _HELD[self._key] = (fd, n - 1)
            else:
                del _HELD[self._key]
                with contextlib.suppress(OSError):
                    if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                        os.unlink(self.path)
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._key = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:  # pragma: no cover - safety net
        with contextlib.suppress(Exception):
            self.release()

    # ------------------------------------------------------------------ internals
    def _in_use(self, owner: dict[str, Any] | None) -> RunInUseError:
        who = _describe(owner) if owner else "another process (the lock file is unreadable)"
        return RunInUseError(
            f"{self.purpose}: {self.what} is in use by {who}; wait for it to finish, stop it, "
            f"or choose another output. (If no such process exists, delete {self.path}.)",
            owner,
        )

    def _record(self) -> dict[str, Any]:
        pid = os.getpid()
        return {
            "pid": pid,
            "host": socket.gethostname(),
            "started": time.time(),
            "proc_start": _proc_start(pid),
            "purpose": self.purpose,
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:500] if sys.argv else "",
        }

    def _stale_without_flock(self, owner: dict[str, Any] | None) -> bool:
        """Fallback when the file system has no flock: is the recorded owner gone?"""
        if not owner:
            return False
        if owner.get("host") != socket.gethostname():
            return False  # cannot check another machine's processes
        pid = int(owner.get("pid", -1))
        if not _pid_alive(pid):
            return True
        rec = owner.get("proc_start")
        now = _proc_start(pid)
        return rec is not None and now is not None and rec != now  # the PID was reused

    def _lock_file(self) -> int:
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                locked = self._flock(fd)
                owner = self._read(fd)
                if locked is False:
                    raise self._in_use(owner)
                if owner and owner.get("pid") != os.getpid():
                    foreign = owner.get("host") != socket.gethostname()
                    # flock is exact on this host; a record from another host (a shared file system
                    # whose locks may not reach us) or a file system without flock: trust the record
                    if (foreign or locked is None) and not self._stale_without_flock(owner):
                        raise self._in_use(owner)
                # we hold the lock; make sure the file was not replaced/removed meanwhile
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    continue
                if owner:
                    self.took_over = owner
                    warnings.warn(
                        f"{self.path}: took over the stale lock of {_describe(owner)}, which is no longer running",
                        RuntimeWarning,
                        stacklevel=4,
                    )
                data = (json.dumps(self._record()) + "\n").encode()
                os.ftruncate(fd, 0)
                os.pwrite(fd, data, 0)
                os.fsync(fd)
                return fd
            except BaseException:
                with contextlib.suppress(OSError):
                    os.close(fd)
                raise
        raise RunInUseError(f"{self.purpose}: could not lock {self.folder} (its lock file keeps changing)")

    @staticmethod
    def _flock(fd: int) -> bool | None:
        """True: locked; False: held by another process; None: flock unsupported here."""
        if fcntl is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        except OSError as err:
            if err.errno in (errno.EAGAIN, errno.EACCES):
                return False
            if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                return None
            raise

    @staticmethod
    def _read(fd: int) -> dict[str, Any] | None:
        try:
            size = os.fstat(fd).st_size
            text = os.pread(fd, min(size, 65536), 0).decode("utf-8", "replace") if size else ""
        except OSError:
            return None
        if not text.strip():
            return None
        try:
            d = json.loads(text)
        except ValueError:
            return {"pid": "?", "host": "?", "raw": text[:200]}
        return d if isinstance(d, dict) else None
