"""scripts/gpu_check.sh: its dry run (every check's CPU stand-in at a tiny size, which CI runs so
that the real check keeps working for the first session lent a GPU), its bad-input contract, and
the requirement check of the wheels it installs."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import REPO
from pgti.bench.gpu_check import OUT_FILES, check_requirements

CHECKS = ("install", "env", "gpu-tests", "data", "bench-dcrnn-cell", "bench-pgt-dcrnn", "nvml", "ddp-nccl-1",
          "pems-full")


def gpu_check(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable)
    return subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpu-check")
    wheels = tmp / ".whl"  # named as in the repository
    if (REPO / ".whl").is_dir():  # a folder made here already: no network needed
        shutil.copytree(REPO / ".whl", wheels)
    out = tmp / "out"
    proc = gpu_check("--dry-run", "--wheels", str(wheels), str(out))
    return proc, out, wheels


@pytest.mark.slow
def test_dry_run_passes_every_check_with_one_line_each(dry_run):
    proc, _, _ = dry_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for check in CHECKS:
        assert sum(line.startswith(f"PASS {check} (") for line in lines) == 1, (check, proc.stdout)
    assert any(line.startswith("SKIP ddp-nccl-2 (") for line in lines)
    assert not any(line.startswith("FAIL ") for line in lines)
    assert lines[-1].startswith(f"gpu_check: {len(CHECKS)} checks passed")


@pytest.mark.slow
def test_dry_run_installs_the_pinned_wheels_offline(dry_run):
    proc, _, wheels = dry_run
    pins = dict(line.strip().split("==") for line in (REPO / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    names = sorted(p.name for p in wheels.glob("*.whl"))
    for package in ("dask", "distributed", "torch_geometric_temporal"):
        version = pins[package.replace("_", "-")]
        assert sum(n.startswith(f"{package}-{version}-") for n in names) == 1, names
    for package in ("partd", "locket", "zict", "tblib", "tornado"):
        assert sum(n.startswith(f"{package}-") for n in names) == 1, names
    assert len(names) == 8
    install = next(line for line in proc.stdout.splitlines() if line.startswith("PASS install"))
    assert f"8 wheels from {wheels}" in install and "dask 2026" in install and "the machine's" in install


@pytest.mark.slow
def test_dry_run_writes_its_report_and_measurements(dry_run):
    _, out, _ = dry_run
    assert sorted(p.name for p in out.iterdir()) == sorted(OUT_FILES)
    with open(out / "checks.csv", newline="") as f:
        checks = {r["check"]: r for r in csv.DictReader(f)}
    assert {c: checks[c]["result"] for c in CHECKS} == dict.fromkeys(CHECKS, "PASS")
    assert checks["ddp-nccl-2"]["result"] == "SKIP"
    with open(out / "results.csv", newline="") as f:
        results = list(csv.DictReader(f))
    measured = {(r["check"], r["mode"]) for r in results}
    assert measured == {("bench-dcrnn-cell", "base"), ("bench-dcrnn-cell", "index"),
                        ("bench-dcrnn-cell", "lazy-index"), ("bench-pgt-dcrnn", "index"), ("pems-full", "index")}
    for r in results:
        assert r["status"] == "ok" and r["device"] == "cpu"
        assert 0 < float(r["data_share"]) < 1 and float(r["s_per_batch"]) > 0
        assert float(r["epoch_s_projected"]) == pytest.approx(float(r["s_per_batch"]) * int(r["full_epoch_batches"]),
                                                              rel=1e-4)
    report = (out / "report.md").read_text()
    assert report.startswith("# GPU check (dry run")
    assert "| bench-dcrnn-cell | PASS |" in report and "| dcrnn-cell | lazy-index | cpu |" in report
    assert "- result: all checks passed" in report
    log = (out / "log.txt").read_text()
    for step in ("install", "env", "gpu-tests", "data", "bench-dcrnn-cell", "nvml", "ddp-nccl-1", "pems-full"):
        assert f"===== {step}" in log
    with tarfile.open(out / "runs.tar.gz") as tar:
        names = set(tar.getnames())
    assert "runs/single-pems-bay-index/system_stats.csv" in names
    assert "runs/ddp-gloo-1/stats.csv" in names and "bench/memory_dcrnn_cell_runs.csv" in names
    assert not any(n.endswith(".pt") for n in names)


@pytest.mark.parametrize("args, message", [
    ((), "missing OUTDIR"),
    (("--bogus", "out"), "unknown option --bogus"),
    (("--budget-s", "ten", "out"), "--budget-s must be a whole number"),
    (("--pems-timesteps", "100", "out"), "--pems-timesteps must be a whole number >= 240"),
    (("a", "b"), "one OUTDIR only"),
    (("--wheels",), "--wheels needs a value"),
])
def test_bad_arguments_end_with_one_line_and_status_2(args, message):
    proc = gpu_check(*args, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and message in proc.stderr
    assert proc.stdout == ""


def test_a_non_empty_outdir_is_refused(tmp_path):
    (tmp_path / "old.csv").write_text("x\n")
    proc = gpu_check("--dry-run", str(tmp_path), timeout=60)
    assert proc.returncode == 2 and "is not empty" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.csv"]


def test_wheels_folder_must_exist_for_the_real_check(tmp_path):
    proc = gpu_check("--wheels", str(tmp_path / "absent"), str(tmp_path / "out"), timeout=60)
    assert proc.returncode == 2 and "is not a folder" in proc.stderr


def test_fetch_script_rejects_unknown_arguments():
    proc = subprocess.run(["bash", str(REPO / "scripts" / "fetch_gpu_wheels.sh"), "--bogus"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "unknown argument --bogus" in proc.stderr


def fake_dist(site: Path, name: str, version: str, requires: list[str]) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


def test_requirement_check_names_what_the_machine_lacks(tmp_path):
    fake_dist(tmp_path, "wheel_a", "1.0", [
        "psutil>=1.0",  # installed and new enough
        "pgti-no-such-package>=2",  # absent
        "pytest<1",  # installed, too new
        'pgti-py2-only; python_version < "3"',  # not for this Python
        'pgti-extra-only; extra == "docs"',  # only with an extra
    ])
    fake_dist(tmp_path, "torch_geometric_temporal", "0.56.2", ["torch-sparse"])  # --no-deps on purpose
    unmet = check_requirements(tmp_path)
    assert [line.split("\t")[:2] for line in unmet] == [["pgti-no-such-package>=2", "wheel_a"],
                                                        ["pytest<1", "wheel_a"]]
    assert unmet[0].endswith("\tabsent")
