"""Train DCRNN on windmill-large: `python single_gpu_testing/windmill_main.py --help` lists the flags."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pgti.engine.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("windmill-large", prog="windmill_main.py"))
