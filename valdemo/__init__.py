"""valdemo: look at the human values of language models with five published methods."""

__version__ = "0.1.0"

import os as _os

# OpenMP threads that wait by spinning (libgomp's default) starve the thread doing the work when
# the CPU is shared (other processes, or two generations at once): measured under load on a shared
# 2-core CPU, batched local generation ran ~10x slower with them (issue 19, benchmarks/backends.py).
# Waiting threads sleep instead. It must be set before torch loads its OpenMP runtime, hence here;
# an OMP_WAIT_POLICY already in the environment wins. On an idle CPU spinning is 1.35-1.6x faster
# (benchmarks/omp_policy.py; README): a machine valdemo has to itself may set OMP_WAIT_POLICY=ACTIVE.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
