"""Run one benchmark task in a fresh Python process, watched so that it can never make the
machine swap or wake the OOM killer: :func:`run_task`.

The child is ``python -m pgti.bench.child``; it is killed (by its process id) if it runs past
``timeout`` seconds or if the memory the system has available falls below ``guard_bytes``
while it runs. Its output goes to a log file whose tail is kept for error messages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

GIB = 1 << 30
DEFAULT_GUARD = GIB  # kill the child when less than this is available to the system
POLL_S = 0.02


@dataclass
class Outcome:
    status: str  # "ok" | "error" | "input error" | "killed: memory guard" | "timeout"
    result: dict | None = None
    message: str = ""
    wall_s: float = 0.0
    log_tail: str = field(default="", repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def run_task(
    task: str,
    args: dict,
    *,
    timeout: float | None = None,
    guard_bytes: int = DEFAULT_GUARD,
    env: dict | None = None,
    echo: bool = False,
) -> Outcome:
    """Run ``TASKS[task](**args)`` in a new interpreter and return what it reported."""
    with tempfile.TemporaryDirectory(prefix="pgti-bench-") as tmp:
        tmp = Path(tmp)
        task_path, result_path, log_path = tmp / "task.json", tmp / "result.json", tmp / "child.log"
        task_path.write_text(json.dumps({"task": task, "args": args}))
        cmd = [sys.executable, "-m", "pgti.bench.child", str(task_path), str(result_path)]
        start = time.perf_counter()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            status = _watch(proc, start, timeout, guard_bytes)
        wall = time.perf_counter() - start
        tail = log_path.read_text(errors="replace")[-4000:]
        if echo and tail:
            print(tail, file=sys.stderr)
        if status is not None:
            return Outcome(status, message=_kill_message(status, timeout, guard_bytes), wall_s=wall, log_tail=tail)
        if not result_path.is_file():
            return Outcome("error", message=f"child exited with status {proc.returncode} and no result: "
                           f"{_last_line(tail)}", wall_s=wall, log_tail=tail)
        report = json.loads(result_path.read_text())
    if report.get("ok"):
        return Outcome("ok", result=report["result"], wall_s=wall, log_tail=tail)
    kind = "input error" if report.get("kind") == "input" else "error"
    return Outcome(kind, message=report.get("error", ""), wall_s=wall,
                   log_tail=tail + report.get("traceback", ""))


def _watch(proc: subprocess.Popen, start: float, timeout: float | None, guard_bytes: int) -> str | None:
    """Wait for ``proc``; kill it and return why if it overruns or memory runs short."""
    while proc.poll() is None:
        if timeout is not None and time.perf_counter() - start > timeout:
            reason = "timeout"
        elif psutil.virtual_memory().available < guard_bytes:
            reason = "killed: memory guard"
        else:
            time.sleep(POLL_S)
            continue
        proc.kill()
        proc.wait()
        return reason
    return None


def _kill_message(status: str, timeout: float | None, guard_bytes: int) -> str:
    if status == "timeout":
        return f"ran past {timeout:.0f} s and was stopped"
    return (f"stopped: the system's available memory fell below {guard_bytes / GIB:.1f} GiB "
            "while it ran (it would have made the machine swap or run out of memory)")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def available_bytes(assume_gib: float | None = None) -> int:
    """Memory the system can give a new process now (psutil), or ``assume_gib`` if given."""
    if assume_gib is not None:
        return int(assume_gib * GIB)
    return psutil.virtual_memory().available


def child_env(threads: int | None = None) -> dict:
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env
