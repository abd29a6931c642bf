"""Distributed DCRNN training, modes dask | index | dask-index.

`python ddp_testing/pems_ddp.py --help` lists the flags; see docs/distributed.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pgti.distributed.driver import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("pems_ddp.py"))
