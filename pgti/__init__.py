"""pgti: index-batching for spatiotemporal GNN training (a reproduction of PGT-I, SC'25).

Data flows one way: file -> (T, N, F) series -> window starts -> split -> batches -> model
-> metrics -> CSV. Each step has one home:

- ``pgti.datasets``: the dataset registry, readers for the real file formats, synthetic data.
- ``pgti.data``: window starts, splits, normalisation, and the batch storages
  (base, index, GPU-index, lazy-index).
- ``pgti.nn``: DCRNN models.
- ``pgti.engine``: training loop, metrics, checkpoints.
- ``pgti.observability``: the memory monitor and the CSV outputs.
- ``pgti.distributed``: Dask + DDP training.
"""

__version__ = "0.1.0"
