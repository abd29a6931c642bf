"""Downloads: atomic, checksummed, and a clear one-line answer when the network is unreachable.

Success and failure paths run against a local http.server on 127.0.0.1; "offline" is real:
a host name that cannot resolve (.invalid, RFC 2606), a refused port, a server that never answers.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import importlib.util
import socket
import threading
from pathlib import Path

import pytest

from pgti.cli_util import run_cli
from pgti.datasets import registry
from pgti.datasets.download import DCRNN_DRIVE, NetworkUnreachable, download, download_file
from pgti.errors import InputError

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = b'{"edges": [[0, 0]], "node_ids": {"A": 0}, "FX": [[0.0]]}'


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/'served'; yields (base_url, directory)."""
    served = tmp_path / "served"
    served.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(served))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()
    httpd.server_close()


def _set_sources(monkeypatch, name, sources):
    spec = dataclasses.replace(registry.DATASETS[name], sources=sources)
    monkeypatch.setitem(registry.DATASETS, name, spec)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_download_streams_verifies_and_moves_into_place(server, tmp_path, monkeypatch):
    base, served = server
    (served / "chickenpox.json").write_bytes(PAYLOAD)
    _set_sources(monkeypatch, "chickenpox", {
        "chickenpox.json": (f"{base}/chickenpox.json", hashlib.sha256(PAYLOAD).hexdigest())
    })
    data = tmp_path / "data"
    (result,) = download("chickenpox", data, progress=False)
    assert result.status == "downloaded" and result.path == data / "chickenpox.json"
    assert result.path.read_bytes() == PAYLOAD
    assert _leftovers(data) == ["chickenpox.json"]
    # Present files are kept unless forced.
    (served / "chickenpox.json").write_bytes(b"{}")
    assert download("chickenpox", data, progress=False)[0].status == "present"
    assert result.path.read_bytes() == PAYLOAD


def test_checksum_mismatch_leaves_no_file(server, tmp_path, monkeypatch):
    base, served = server
    (served / "chickenpox.json").write_bytes(PAYLOAD)
    _set_sources(monkeypatch, "chickenpox", {"chickenpox.json": (f"{base}/chickenpox.json", "0" * 64)})
    data = tmp_path / "data"
    with pytest.raises(InputError, match="checksum mismatch for chickenpox.json"):
        download("chickenpox", data, progress=False)
    assert _leftovers(data) == []


def test_forced_download_that_fails_keeps_the_old_file(server, tmp_path, monkeypatch):
    base, served = server
    (served / "chickenpox.json").write_bytes(b"{}")
    _set_sources(monkeypatch, "chickenpox", {"chickenpox.json": (f"{base}/chickenpox.json", "0" * 64)})
    data = tmp_path / "data"
    data.mkdir()
    (data / "chickenpox.json").write_bytes(PAYLOAD)
    with pytest.raises(InputError, match="checksum mismatch"):
        download("chickenpox", data, force=True, progress=False)
    assert (data / "chickenpox.json").read_bytes() == PAYLOAD
    assert _leftovers(data) == ["chickenpox.json"]


def test_web_page_instead_of_data_is_refused(server, tmp_path):
    base, served = server
    (served / "page.html").write_bytes(b"<!DOCTYPE html><html>sign in</html>")
    with pytest.raises(InputError, match=r"did not return a \.h5 file"):
        download_file(f"{base}/page.html", tmp_path / "pems.h5", progress=False)
    assert _leftovers(tmp_path) == ["served"]


def test_http_error_is_an_input_error_not_a_network_one(server, tmp_path):
    base, _ = server
    with pytest.raises(InputError, match="HTTP 404") as info:
        download_file(f"{base}/missing.pkl", tmp_path / "adj.pkl", progress=False)
    assert not isinstance(info.value, NetworkUnreachable)
    assert _leftovers(tmp_path) == ["served"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("url, reason", [
    ("http://pgti-download-test.invalid/chickenpox.json", "cannot resolve"),
    (f"http://127.0.0.1:{_free_port()}/chickenpox.json", "connection refused"),
])
def test_offline_says_where_to_put_files_and_how_to_generate(tmp_path, monkeypatch, url, reason):
    _set_sources(monkeypatch, "chickenpox", {"chickenpox.json": (url, None)})
    data = tmp_path / "data"
    with pytest.raises(NetworkUnreachable) as info:
        download("chickenpox", data, timeout=5, progress=False)
    message = str(info.value)
    assert "\n" not in message and "network unreachable" in message and reason in message
    assert f"save it as {data / 'chickenpox.json'}" in message
    assert f"python scripts/make_synthetic.py --dataset chickenpox --data-dir {data}" in message
    assert _leftovers(data) == []


def test_server_that_never_answers_times_out(tmp_path):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/x.json"
        with pytest.raises(NetworkUnreachable, match="timed out"):
            download_file(url, tmp_path / "x.json", timeout=0.3, progress=False)
    assert _leftovers(tmp_path) == []


def test_series_without_a_link_gets_a_manual_instruction(server, tmp_path, monkeypatch):
    base, served = server
    (served / "adj.pkl").write_bytes(b"\x80\x02]q\x00.")
    _set_sources(monkeypatch, "metr-la", {"adj_mx_metr-la.pkl": (f"{base}/adj.pkl", None)})
    data = tmp_path / "data"
    h5, pkl = download("metr-la", data, progress=False)
    assert pkl.status == "downloaded" and (data / "adj_mx_metr-la.pkl").is_file()
    assert h5.status == "manual" and DCRNN_DRIVE in h5.detail and str(data / "metr-la.h5") in h5.detail


# --- command line ---------------------------------------------------------------------------


def _cli():
    spec = importlib.util.spec_from_file_location("download_data", REPO / "scripts" / "download_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_cli_exit_1_when_files_must_be_fetched_by_hand(server, tmp_path, monkeypatch, capsys):
    base, served = server
    (served / "adj.pkl").write_bytes(b"\x80\x02]q\x00.")
    _set_sources(monkeypatch, "pems-bay", {"adj_mx_pems-bay.pkl": (f"{base}/adj.pkl", None)})
    assert run_cli(_cli(), ["pems-bay", "--data-dir", str(tmp_path), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "downloaded" in out and f"manual     {tmp_path / 'pems-bay.h5'}" in out


def test_cli_offline_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    _set_sources(monkeypatch, "chickenpox", {"chickenpox.json": ("http://pgti-download-test.invalid/c.json", None)})
    assert run_cli(_cli(), ["all", "--data-dir", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: network unreachable")


@pytest.mark.parametrize("argv, message", [
    (["nope"], "unknown dataset 'nope'"),
    (["metr-la", "--timeout", "0"], "timeout must be positive"),
    (["metr-la", "--timeout", "soon"], "invalid float value"),
    ([], "required: dataset"),
])
def test_cli_bad_arguments_exit_2(tmp_path, capsys, argv, message):
    assert run_cli(_cli(), [*argv, "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


# --- the PGT JSON datasets (Montevideo bus, Pedal Me, England COVID) ------------------------


@pytest.mark.parametrize("name", ["montevideo-bus", "pedalme", "england-covid"])
def test_pgt_json_dataset_downloads_against_the_registry_checksum(server, tmp_path, monkeypatch, capsys, name):
    """Served the shipped file under the upstream URL's file name, the CLI fetches it, and the
    registry's sha256 (kept, only the host is replaced) accepts it."""
    base, served = server
    (file_name,) = registry.DATASETS[name].layouts[0]
    url, sha256 = registry.DATASETS[name].sources[file_name]
    assert url.endswith(f"/pytorch_geometric_temporal/master/dataset/{file_name}") and sha256
    shipped = (REPO / "data" / file_name).read_bytes()
    (served / file_name).write_bytes(shipped)
    _set_sources(monkeypatch, name, {file_name: (f"{base}/{file_name}", sha256)})
    data = tmp_path / "data"
    assert run_cli(_cli(), [name, "--data-dir", str(data), "--quiet"]) == 0
    assert f"downloaded {data / file_name}" in capsys.readouterr().out
    assert (data / file_name).read_bytes() == shipped and _leftovers(data) == [file_name]
    # a different file under that name is refused, and nothing is saved
    (served / file_name).write_bytes(shipped[:-2] + b"}}")
    with pytest.raises(InputError, match=f"checksum mismatch for {file_name}"):
        download(name, tmp_path / "other", progress=False)
    assert _leftovers(tmp_path / "other") == []
