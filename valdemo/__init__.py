"""valdemo: look at the human values of language models with five published methods."""

__version__ = "0.1.0"

import os as _os

# How OpenMP's waiting threads wait (issue 19, benchmarks/omp_policy.py, README "Performance").
# Spinning for good (libgomp's ACTIVE) is fastest on a CPU valdemo has to itself but starves the
# working thread when processes share the CPU (3-10x slower measured); sleeping at once (PASSIVE)
# is safe there but pays a wake-up per parallel region, 1.4-1.7x slower alone. valdemo's default is
# a brief spin (ACTIVE with GOMP_SPINCOUNT=10000, a few microseconds): nearly ACTIVE's speed alone,
# and a bounded loss when shared. It must be set before torch loads its OpenMP runtime, hence here;
# an OMP_WAIT_POLICY already in the environment wins (PASSIVE for a crowded shared machine).
if "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ["OMP_WAIT_POLICY"] = "ACTIVE"
    _os.environ.setdefault("GOMP_SPINCOUNT", "10000")
