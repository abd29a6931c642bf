"""One module per benchmark, ``pgti.bench.suites.<name>`` behind ``scripts/bench_<name>.py``.
Each has ``main(argv=None) -> int`` (under ``pgti.cli_util.run_cli``); the scripts only call it.
What two suites share lives in ``pgti.bench.cli`` and ``pgti.bench.report``."""
