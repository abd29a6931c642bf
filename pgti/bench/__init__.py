"""The measuring library behind ``scripts/bench_*.py``: the scripts stay thin, this does the work.

- ``suites``: one module per benchmark, with its flags, tables, targets and plots; each script
  only calls its suite's ``main``.
- ``runner``: run one task in a fresh, watched Python process (``run_task``); ``child`` is the
  process's entry point and ``tasks`` what it can do (generate data, measure memory, time rates;
  and the models suite's ``model_steps``: training-step times, as JSON).
- ``rss``: peak RSS of a span above the idle interpreter (5 ms sampling + the kernel's VmHWM).
- ``sizes``: each mode's bytes before loading anything, to refuse what would not fit.
- ``peer``: PyTorch Geometric Temporal 0.56.2's index path (its loaders' arrays, its
  ``IndexDataset`` and a default ``DataLoader``) on our files.
- ``inputs``: real files, or cached synthetic ones in the real formats.
- ``machine``, ``report``: the machine and date, CSV/markdown/PNG writers, target lines, the
  rate table; ``cli``: the flags and steps that several suites share.
"""
