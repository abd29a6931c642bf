"""Entry point of a fresh benchmark process: ``python -m pgti.bench.child TASK.json RESULT.json``.

TASK.json is ``{"task": name, "args": {...}}`` (see :data:`pgti.bench.tasks.TASKS`, and
:data:`SUITE_TASKS`); the result (or ``{"error": ..., "kind": ...}``) is written to RESULT.json.
Everything the task imports is imported here, before it starts, so a task's memory baseline is
taken after the imports.
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback

# Tasks of a benchmark suite: (module, function), imported only by the process that runs them.
SUITE_TASKS = {"model_steps": ("pgti.bench.suites.models", "measure_steps"),
               "zoo_pgt_workflow": ("pgti.bench.suites.zoo", "task_pgt_workflow")}


def find_task(name: str):
    if name in SUITE_TASKS:
        module, function = SUITE_TASKS[name]
        return getattr(importlib.import_module(module), function)
    from pgti.bench.tasks import TASKS

    return TASKS[name]


def main(argv: list[str]) -> int:
    task_path, result_path = argv
    with open(task_path) as f:
        task = json.load(f)
    run = find_task(task["task"])
    from pgti.errors import InputError

    try:
        result = {"ok": True, "result": run(**task.get("args", {}))}
        status = 0
    except InputError as exc:
        result = {"ok": False, "kind": "input", "error": str(exc)}
        status = 2
    except MemoryError as exc:
        result = {"ok": False, "kind": "memory", "error": f"MemoryError: {exc}"}
        status = 1
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
        result = {"ok": False, "kind": "error", "error": f"{type(exc).__name__}: {exc}",
                  "traceback": traceback.format_exc()}
        status = 1
    with open(result_path, "w") as f:
        json.dump(result, f)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
