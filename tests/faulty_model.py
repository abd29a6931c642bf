"""A model for fault-injection tests, brought in as users bring theirs (``--model
faulty_model:DiesAfter``): a dcrnn-cell whose process ends abruptly (``os._exit``) on DDP rank
``die_rank`` once it has trained ``die_after`` batches. No test hook sits in the library."""

import os
import sys

import torch

from pgti.nn import build_model


class DiesAfter(torch.nn.Module):
    def __init__(self, *, die_rank: int = 1, die_after: int = 1, **graph):
        super().__init__()
        self.inner = build_model("dcrnn-cell", **graph)
        self.die_rank, self.die_after, self.trained = die_rank, die_after, 0

    def forward(self, x, y=None):
        if self.training:
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            if rank == self.die_rank and self.trained >= self.die_after:
                sys.stderr.flush()
                os._exit(3)
            self.trained += 1
        return self.inner(x, y)
