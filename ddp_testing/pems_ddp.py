"""Distributed DCRNN training, modes dask | index | dask-index.

`python ddp_testing/pems_ddp.py --help` lists the flags; see docs/distributed.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pgti.engine.cli import ddp_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(ddp_main("pems_ddp.py"))
