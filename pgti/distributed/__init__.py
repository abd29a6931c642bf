"""Distributed training: PyTorch DDP ranks running as tasks on Dask workers, on one node
(a ``LocalCluster``) or many (a cluster started by ``submit.sh`` / ``submit_slurm.sh``).

- ``cluster``: start or join the Dask cluster, wait for workers, give each a rank and a GPU,
  read Dask's transfer counters.
- ``samplers``: ``DistributedSampler`` shares and the batch-shuffled partitions.
- ``storage``: the series (or every window) as dask arrays in the cluster, and the rank-side
  storages that fetch batches from there or index a local slab.
- ``plans``: a rank's batch plan for ``pgti.engine.trainer.fit``.
- ``rank``: one rank's job (process group, DDP, training, evaluation).
- ``driver``: the ``ddp_testing/`` drivers' flags and flow.

See docs/distributed.md.
"""
