"""Scoring and sweeps beyond one process: a local process pool, or a Ray cluster.

Why Ray and not a home-made scheduler: plants that re-score archives of millions of images,
or compare methods over dozens of categories, expect a well-known engine that runs on a laptop
as a local cluster and on many machines unchanged; Ray retries a batch whose worker died,
places tasks by declared resources (one CPU or one GPU each) and is an optional extra
(``pip install -e '.[cluster]'``). Without it the same commands use a local process pool.

- :mod:`.backends` picks the engine (``--cluster auto|local|ray://HOST:PORT``) and scores
  batches of a ``predict`` run in other processes, handing rows back in batch order so the
  resumable ``scores.csv`` is written exactly as in one process.
- :mod:`.worker` is what runs inside a worker: the model package is loaded once per process.
- :mod:`.sweep` trains and evaluates every method x category x parameter combination as a task
  of its own and keeps a leaderboard.
"""

from workbench.core.cluster.backends import ClusterError, ClusterSpec, make_backend, parse_cluster

__all__ = ["ClusterError", "ClusterSpec", "make_backend", "parse_cluster"]
