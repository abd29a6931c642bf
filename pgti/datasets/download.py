"""Fetch the real datasets from their public sources (``DatasetSpec.sources`` in the registry).

Each file is streamed into a temporary file beside its destination, checked (sha256 where the
registry knows it; otherwise that it starts like the format it should be, which catches HTML
pages served instead of data) and moved into place with os.replace. On any failure the temporary
file is removed, so nothing half-downloaded ever carries a dataset's file name.

Files with no direct link (METR-LA and PeMS-Bay series are on DCRNN's Google Drive) get a
manual instruction instead: where to fetch them and the exact path to save them under.
An unreachable network is an InputError whose one line says where to put the files by hand
and how to generate synthetic data instead.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pgti.datasets.registry import DatasetSpec, get_spec
from pgti.errors import InputError

DCRNN_DRIVE = "https://drive.google.com/open?id=10FOTa6HXPqX8Pf5WRoRwcFnW9BrNZEIX"

# Files without a direct download link: file name -> where a person can fetch it.
MANUAL_SOURCES: dict[str, str] = {
    "metr-la.h5": f"DCRNN's Google Drive folder {DCRNN_DRIVE} (file metr-la.h5)",
    "pems-bay.h5": f"DCRNN's Google Drive folder {DCRNN_DRIVE} (file pems-bay.h5)",
}

# How each kind of file begins; a download that does not is refused (likely an HTML page).
_MAGIC = {
    ".h5": (b"\x89HDF\r\n\x1a\n",),
    ".pkl": (b"\x80", b"("),  # pickle protocol >= 2, or protocol 0
    ".json": (b"{", b"["),
}

_CHUNK = 1 << 20


class NetworkUnreachable(InputError):
    """The host could not be reached (DNS failure, refused connection, timeout)."""


@dataclass(frozen=True)
class FileResult:
    path: Path
    status: str  # "downloaded" | "present" | "manual"
    detail: str = ""  # the URL fetched, or the manual instruction


def synthetic_hint(spec: DatasetSpec, data_dir: str | Path) -> str:
    return f"python scripts/make_synthetic.py --dataset {spec.name} --data-dir {data_dir}"


def manual_instruction(spec: DatasetSpec, path: Path) -> str:
    source = MANUAL_SOURCES.get(path.name)
    if source is None and path.name in spec.sources:
        source = spec.sources[path.name][0]
    where = source or "the dataset's authors (no public link is known)"
    return f"fetch {path.name} by hand from {where} and save it as {path}"


def _describe_network_error(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, socket.gaierror):
        return "cannot resolve the host name (no DNS: offline?)"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "timed out"
    return f"{type(reason).__name__}: {reason}"


def _network_error(url: str, exc: BaseException) -> InputError:
    if isinstance(exc, urllib.error.HTTPError):
        return InputError(f"HTTP {exc.code} ({exc.reason}) fetching {url}")
    return NetworkUnreachable(f"network unreachable fetching {url}: {_describe_network_error(exc)}")


def download_file(
    url: str, dest: str | Path, *, sha256: str | None = None, timeout: float = 60.0, progress: bool = True
) -> str:
    """Download ``url`` to ``dest`` atomically; return the file's sha256 (hex).

    Raises NetworkUnreachable when the host cannot be reached or stops answering, InputError on
    an HTTP error, a checksum mismatch, or content that does not look like ``dest``'s format.
    On failure nothing is left at ``dest`` or beside it.
    """
    from tqdm import tqdm

    dest = Path(dest)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "pgti-download"})
            try:
                response = urllib.request.urlopen(request, timeout=timeout)
            except (urllib.error.URLError, OSError) as exc:
                raise _network_error(url, exc) from None
            with response:
                total = response.headers.get("Content-Length")
                with tqdm(
                    total=int(total) if total and total.isdigit() else None, unit="B",
                    unit_scale=True, desc=dest.name, leave=False,
                    disable=not (progress and sys.stderr.isatty()),
                ) as bar:
                    while True:
                        try:
                            chunk = response.read(_CHUNK)
                        except OSError as exc:  # timeout or reset mid-transfer
                            raise _network_error(url, exc) from None
                        if not chunk:
                            break
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        got = digest.hexdigest()
        if sha256 is not None and got != sha256.lower():
            raise InputError(
                f"checksum mismatch for {dest.name} from {url}: expected sha256 {sha256}, "
                f"got {got}; nothing was saved"
            )
        magic = _MAGIC.get(dest.suffix)
        if magic is not None:
            with open(tmp, "rb") as f:
                head = f.read(64).lstrip()
            if not head.startswith(magic):
                raise InputError(
                    f"{url} did not return a {dest.suffix} file (it starts with {head[:16]!r}, "
                    f"perhaps a web page); nothing was saved: fetch it in a browser and save it as {dest}"
                )
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dest)
        return got
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def download(
    name: str, data_dir: str | Path = "data", *, timeout: float = 60.0, force: bool = False, progress: bool = True
) -> list[FileResult]:
    """Fetch dataset ``name``'s files (its first layout) into ``data_dir``.

    Files already there are kept unless ``force``. Files without a direct link come back with
    status "manual" and the instruction. Raises NetworkUnreachable (an InputError) offline.
    """
    spec = get_spec(name)
    if not timeout > 0:
        raise InputError(f"timeout must be positive, got {timeout}")
    data_dir = Path(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create data directory {data_dir}: {exc.strerror or exc}") from None
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise InputError(f"data directory {data_dir} is not writable")
    results = []
    for path in spec.default_paths(data_dir):
        if path.is_file() and not force:
            results.append(FileResult(path, "present"))
            continue
        source = spec.sources.get(path.name)
        if source is None:
            results.append(FileResult(path, "manual", manual_instruction(spec, path)))
            continue
        url, sha256 = source
        try:
            download_file(url, path, sha256=sha256, timeout=timeout, progress=progress)
        except NetworkUnreachable as exc:
            by_hand = "; ".join(manual_instruction(spec, p) for p in spec.default_paths(data_dir))
            raise NetworkUnreachable(
                f"{exc}. To continue offline, {by_hand}; or generate synthetic data instead: "
                f"{synthetic_hint(spec, data_dir)}"
            ) from None
        results.append(FileResult(path, "downloaded", url))
    return results
