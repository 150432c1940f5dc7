"""ZeroGPU: on a Hugging Face Space with ZeroGPU hardware, local-model work runs under ``spaces.GPU``.

ZeroGPU lends a GPU only to calls of functions decorated with ``spaces.GPU``; the decorated
functions must exist before the app starts, and ``spaces`` must be imported before torch
(``app.py`` calls :func:`prepare` first). Elsewhere, or where the ``spaces`` package is not
installed, everything here is a no-op: :func:`on_zero_gpu` returns the model it was given.

Where a GPU is present, ``local:`` models load on it (``VALDEMO_DEVICE=auto``, see
:func:`valdemo.models.local._pick_device`).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable, Iterator
from typing import Any

#: Seconds a GPU call may take before ZeroGPU stops it (a batch of generations).
GPU_DURATION_S = 120

#: The model methods that generate or score (each call gets the GPU for its duration).
GPU_METHODS = ("chat", "chat_batch", "stream", "answer_probs", "answer_probs_batch", "warm")


def zero_gpu_space() -> bool:
    """True on a ZeroGPU Space (the platform sets ``SPACES_ZERO_GPU``) with ``spaces`` installed."""
    flag = os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in {"1", "true", "yes", "on"}
    return flag and importlib.util.find_spec("spaces") is not None


def _run(model: Any, method: str, args: tuple, kwargs: dict) -> Any:
    return getattr(model, method)(*args, **kwargs)


def _run_stream(model: Any, args: tuple, kwargs: dict) -> Iterator[str]:
    yield from model.stream(*args, **kwargs)


_gpu_run: Callable[..., Any] = _run
_gpu_run_stream: Callable[..., Iterator[str]] = _run_stream


def prepare() -> bool:
    """On a ZeroGPU Space: import ``spaces`` (before torch) and decorate the GPU entry points.
    Returns whether ZeroGPU is in use. Safe to call more than once."""
    global _gpu_run, _gpu_run_stream
    if not zero_gpu_space():
        return False
    if _gpu_run is _run:
        spaces = importlib.import_module("spaces")
        _gpu_run = spaces.GPU(duration=GPU_DURATION_S)(_run)
        _gpu_run_stream = spaces.GPU(duration=GPU_DURATION_S)(_run_stream)
    return True


class ZeroGPUModel:
    """A local model whose generating and scoring calls each run under ``spaces.GPU``; every
    other attribute is the model's own."""

    def __init__(self, inner: Any):
        self._zerogpu_inner = inner

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__["_zerogpu_inner"]
        attr = getattr(inner, name)
        if name not in GPU_METHODS:
            return attr
        if name == "stream":
            return lambda *args, **kwargs: _gpu_run_stream(inner, args, kwargs)
        return lambda *args, **kwargs: _gpu_run(inner, name, args, kwargs)

    def __repr__(self) -> str:
        return f"ZeroGPU({self._zerogpu_inner!r})"


def on_zero_gpu(model: Any) -> Any:
    """``model`` with its GPU work under ``spaces.GPU`` on a ZeroGPU Space; ``model`` itself elsewhere."""
    return ZeroGPUModel(model) if prepare() else model
