#!/usr/bin/env python
"""Time one training step of each model, through the real ``Trainer.train_epoch``.

The benchmark is ``pgti.bench.suites.models``; this script only runs it.

    python scripts/bench_models.py                      # all trainable models, CPU
    python scripts/bench_models.py --models pgt-dcrnn,dcrnn-cell --threads 2
    python scripts/bench_models.py --models dcrnn --memory --before --nodes 207 --edges 1722
    python scripts/bench_models.py --models dcrnn --saved-tensors --before --batch-size 16
    python scripts/bench_models.py --models dcrnn --option hidden=32 --option layers=1
    python scripts/bench_models.py --device cuda
"""

from pgti.bench.suites.models import main

if __name__ == "__main__":
    raise SystemExit(main())
