"""Entry point of a fresh benchmark process: ``python -m pgti.bench.child TASK.json RESULT.json``.

TASK.json is ``{"task": name, "args": {...}}`` (see :data:`pgti.bench.tasks.TASKS`); the result
(or ``{"error": ..., "kind": ...}``) is written to RESULT.json. Everything the tasks import is
imported here, before any task starts, so a task's memory baseline is taken after the imports.
"""

from __future__ import annotations

import json
import sys
import traceback


def main(argv: list[str]) -> int:
    task_path, result_path = argv
    with open(task_path) as f:
        task = json.load(f)
    from pgti.bench.tasks import TASKS
    from pgti.errors import InputError

    try:
        result = {"ok": True, "result": TASKS[task["task"]](**task.get("args", {}))}
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
