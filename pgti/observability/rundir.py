"""A run directory belongs to one run.

- A new run refuses a directory that already holds a run's files (continue that run with
  ``--resume``, or replace it with ``--overwrite``).
- A lock file (``.pgti.lock``: PID, host, process start time) is held for the run's lifetime, so
  a second writer fails at once; a lock left by a process that is gone is taken over.
- A run refused before it started (bad data, a checkpoint that does not fit, ...) leaves nothing
  behind: files it created are removed, files it appended to are cut back to their old length,
  directories it made are removed, and a run it was to replace is put back.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

import psutil

from pgti.errors import InputError

LOCK_FILE = ".pgti.lock"
REPLACED_DIR = ".replaced-run"
RUN_FILE_PATTERNS = ("config.json", "stats.csv", "per_epoch_stats.csv", "system_stats*.csv",
                     "checkpoint.pt", "dask_transfers.csv", "worker_rank*.log")
"""Files that mark a directory as holding a run."""


def run_files(path: Path) -> list[Path]:
    found: set[Path] = set()
    for pattern in RUN_FILE_PATTERNS:
        found.update(p for p in path.glob(pattern) if p.is_file())
    return sorted(found)


def _make_dirs(path: Path) -> list[Path]:
    """mkdir -p, returning the directories this call created (outermost first)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    created = []
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            for c in reversed(created):
                _rmdir_quietly(c)
            raise InputError(f"output directory {d} cannot be created: {exc.strerror or exc}") from None
        created.append(d)
    return created


def _rmdir_quietly(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def _process_started(pid: int) -> float | None:
    """Start time of process ``pid`` on this host, or None if there is no such process."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return None
    except psutil.Error:  # exists, but we may not look at it: count it as alive
        return -1.0


def _owner_alive(owner: dict) -> bool:
    if owner.get("host") != socket.gethostname():
        return True  # cannot tell from here; the message says how to clear it
    started = _process_started(int(owner.get("pid", -1)))
    if started is None:
        return False
    recorded = owner.get("started")
    # A reused PID belongs to a younger process than the one that took the lock.
    return started < 0 or not isinstance(recorded, (int, float)) or abs(started - recorded) < 1.0


def _read_owner(lock: Path) -> dict | None:
    try:
        owner = json.loads(lock.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # unreadable: treated as a lock of unknown owner
    return owner if isinstance(owner, dict) else {}


class RunDir:
    """A claimed run directory (see the module docstring). Use :meth:`claim` or :meth:`claim_new`."""

    def __init__(self, path: Path, created: list[Path]):
        self.path = path
        self.created = created
        self._sizes: dict[str, int] = {}
        self._locked = False
        self.started = False
        self.replaced: Path | None = None

    # --- claiming ----------------------------------------------------------------------------

    @classmethod
    def claim(cls, path: str | os.PathLike, *, continuing: bool = False, overwrite: bool = False) -> "RunDir":
        """Claim ``path`` for a run. ``continuing``: the run resumes the run already there."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise InputError(f"output directory {path} exists and is not a directory")
        existing = run_files(path) if path.is_dir() else []
        if existing and not continuing and not overwrite:
            names = ", ".join(p.name for p in existing[:4])
            raise InputError(
                f"output directory {path} already holds a run ({names}); continue it with "
                f"output.resume {path}, replace it with output.overwrite, or choose another output.output_dir",
                field="output.output_dir")
        run = cls(path, _make_dirs(path))
        run._lock()
        if existing and overwrite and not continuing:
            run._set_aside(existing)
        run._sizes = {p.name: p.stat().st_size for p in path.iterdir() if p.is_file()}
        return run

    @classmethod
    def claim_new(cls, results_root: str | os.PathLike, *parts: str, now: _dt.datetime | None = None) -> "RunDir":
        """Claim a fresh ``<results_root>/<parts...>/<YYYYmmdd-HHMMSS>[-k]/`` (exclusive mkdir, so
        runs started in the same second get ``-1``, ``-2``, ... suffixes)."""
        stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
        parent = Path(results_root).joinpath(*parts)
        created = _make_dirs(parent)
        for k in range(1000):
            candidate = parent / (stamp if k == 0 else f"{stamp}-{k}")
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                raise InputError(f"output directory {candidate} cannot be created: {exc.strerror or exc}") from None
            run = cls(candidate, created + [candidate])
            run._lock()
            return run
        raise InputError(f"output directory {parent}: too many runs named {stamp}")

    def _lock(self) -> None:
        lock = self.path / LOCK_FILE
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": _process_started(os.getpid()),
              "since": _dt.datetime.now().astimezone().isoformat(timespec="seconds")}
        try:
            fd, tmp = tempfile.mkstemp(prefix=".lock-", dir=self.path)
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
        except OSError as exc:
            self._undo_dirs()
            raise InputError(f"output directory {self.path} is not writable: {exc.strerror or exc}") from None
        try:
            for _ in range(3):
                try:
                    os.link(tmp, lock)  # atomic: fails if a lock exists; the lock is never half-written
                    self._locked = True
                    return
                except FileExistsError:
                    owner = _read_owner(lock)
                    if owner is None:
                        continue  # released meanwhile
                    if owner and _owner_alive(owner):
                        raise InputError(
                            f"output directory {self.path} is in use by another run (PID {owner.get('pid')} "
                            f"on {owner.get('host')}, since {owner.get('since')}); wait for it or choose another "
                            f"output.output_dir (if no such run exists, delete {lock})", field="output.output_dir")
                    if not owner:
                        raise InputError(f"output directory {self.path} has an unreadable lock file {lock}; "
                                         f"delete it if no run is using the directory")
                    # Stale: its process is gone. Move it aside (only one taker's rename succeeds).
                    try:
                        os.rename(lock, self.path / f".stale-lock-{uuid.uuid4().hex[:8]}")
                    except FileNotFoundError:
                        pass
                    for stale in self.path.glob(".stale-lock-*"):
                        stale.unlink(missing_ok=True)
            raise InputError(f"output directory {self.path}: could not take the lock {lock}")
        except InputError:
            Path(tmp).unlink(missing_ok=True)
            self._undo_dirs()
            raise
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _set_aside(self, existing: list[Path]) -> None:
        """--overwrite: move the old run's files aside; they come back if this run is refused and
        are deleted once it has started."""
        aside = self.path / REPLACED_DIR
        shutil.rmtree(aside, ignore_errors=True)
        aside.mkdir()
        for p in existing:
            os.replace(p, aside / p.name)
        self.replaced = aside

    # --- life cycle ----------------------------------------------------------------------------

    def mark_started(self) -> None:
        """The run passed every check and is training: from now on its files are kept."""
        self.started = True
        if self.replaced is not None:
            shutil.rmtree(self.replaced, ignore_errors=True)
            self.replaced = None

    def discard(self) -> None:
        """Undo what a refused run wrote (see the module docstring)."""
        for p in self.path.iterdir() if self.path.is_dir() else []:
            if not p.is_file() or p.name == LOCK_FILE:
                continue
            old = self._sizes.get(p.name)
            try:
                if old is None:
                    p.unlink()
                elif p.stat().st_size > old:
                    os.truncate(p, old)
            except OSError:
                pass
        if self.replaced is not None:
            for p in self.replaced.iterdir():
                os.replace(p, self.path / p.name)
            self.replaced.rmdir()
            self.replaced = None

    def release(self) -> None:
        if self._locked:
            lock = self.path / LOCK_FILE
            owner = _read_owner(lock)
            if owner and owner.get("pid") == os.getpid():
                lock.unlink(missing_ok=True)
            self._locked = False

    def _undo_dirs(self) -> None:
        for d in reversed(self.created):
            _rmdir_quietly(d)

    def close(self, failed: bool) -> None:
        """Release the lock; if the run failed before it started, discard what it wrote."""
        if failed and not self.started:
            self.discard()
            self.release()
            self._undo_dirs()
        else:
            self.release()
