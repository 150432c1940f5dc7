"""The local backend, run for real on the bundled SmolLM2-135M."""

import time

import pytest

from valdemo.models import GenParams, ModelError, user
from valdemo.models.local import BUNDLED_NAME, bundled_gguf_path, converted_bundled_dir

pytestmark = pytest.mark.slow


def test_bundled_model_is_installed_and_converted(bundled_dir):
    assert bundled_gguf_path() is not None
    config = (bundled_dir / "config.json").read_text()
    assert '"LlamaForCausalLM"' in config  # transformers serve needs architectures
    assert "quantization_config" not in config
    assert (bundled_dir / "model.safetensors").stat().st_size > 100_000_000
    # A second call finds the folder instead of converting again.
    start = time.perf_counter()
    assert converted_bundled_dir() == bundled_dir
    assert time.perf_counter() - start < 1.0


def test_one_chat(local_model_nocache):
    reply = local_model_nocache.chat(user("What is the capital of France?"), GenParams(max_new_tokens=16))
    assert reply.text.strip()
    assert reply.backend == "local" and reply.model == BUNDLED_NAME
    assert reply.latency_s > 0 and not reply.cached
    assert local_model_nocache.is_bundled


def test_batch_of_four_matches_one_at_a_time(local_model_nocache):
    prompts = [user(q) for q in ["Name a fruit.", "Name a colour.", "What is 2 plus 2?", "Say hello."]]
    params = GenParams(max_new_tokens=12)
    batch = local_model_nocache.chat_batch(prompts, params)
    assert len(batch) == 4 and all(r.text.strip() for r in batch)
    singles = [local_model_nocache.chat(p, params).text for p in prompts[:2]]
    # Greedy decoding with left padding gives the same words as unpadded runs.
    for single, batched in zip(singles, batch[:2], strict=False):
        assert single.split()[:3] == batched.text.split()[:3]


def test_choose_reads_answer_probabilities_with_their_mass(local_model_nocache):
    """choose() on the local backend: probabilities of complete answers, renormalised over the options,
    with the raw mass that fell on them reported; batched answers equal one-at-a-time ones."""
    from valdemo.core.choose import choose

    conv = user("Is water wet? A. Yes  B. No  C. Not applicable\nAnswer with the letter.")
    raw = local_model_nocache.answer_probs(conv, ["A", "B", "C"])
    (c,) = choose(local_model_nocache, [conv], ["A", "B", "C"], min_mass=0.0)
    assert c.via == "probs" and set(c.probs) == {"A", "B", "C"}
    assert sum(c.probs.values()) == pytest.approx(1.0, abs=1e-6)
    assert c.mass == pytest.approx(sum(raw.values()), abs=1e-6) and 0.0 < c.mass <= 1.0
    assert c.option == max(c.probs, key=c.probs.get)
    # Batches are sorted by length inside; results still come back in the caller's order.
    convs = [conv, user("A or B?"), user("Long question " * 30 + "A or B?")]
    batched = choose(local_model_nocache, convs, ["A", "B"], min_mass=0.0)
    for conv_, b in zip(convs, batched, strict=True):
        (single,) = choose(local_model_nocache, [conv_], ["A", "B"], min_mass=0.0)
        assert b.probs["A"] == pytest.approx(single.probs["A"], abs=2e-3)


@pytest.fixture
def scoring(local_model_nocache):
    """The bundled model's inner backend and loaded state, with a fresh prefix store (restored after)."""
    from valdemo.models import unwrap
    from valdemo.models.prefix import PrefixStore

    inner = unwrap(local_model_nocache)
    loaded = inner._get()
    saved = loaded.prefixes
    loaded.prefixes = PrefixStore(256 * 2**20)
    yield inner, loaded
    loaded.prefixes = saved


def _whole(inner, loaded, convs, options, answers=None):
    """Each conversation's answer probabilities read alone and whole (no stored prefix, no shared one)."""
    saved, loaded.prefixes = loaded.prefixes, None
    try:
        return [inner.answer_probs_batch([c], options, answers=answers)[0] for c in convs]
    finally:
        loaded.prefixes = saved


def test_a_shared_prompt_prefix_is_read_once_with_the_same_probabilities(scoring):
    """Prompts that share a long prefix (a judge's system prompt and worked examples) read it once
    (``_prompt_forward``); each row's probabilities equal reading its prompt alone, multi-token answers
    and rows of different lengths included (left padding sits between prefix and remainder)."""
    inner, loaded = scoring
    loaded.prefixes = None  # the batch-shared prefix alone, no store
    shared = "You are a careful judge. " * 20  # well over SHARED_PREFIX_MIN tokens
    convs = [user(shared + q) for q in ("Is fire cold? Answer Yes or No.", "Is ice cold?",
                                         "Is a long, long, long, long, long, long river wet? Answer Yes or No.")]
    options, answers = ["Yes", "No"], {"Yes": "Yes, it is", "No": "No"}
    reused = loaded.reused_tokens
    batched = inner.answer_probs_batch(convs, options, answers=answers)
    assert loaded.reused_tokens - reused >= 2 * inner.SHARED_PREFIX_MIN, "the shared prefix was read more than once"
    for b, single in zip(batched, _whole(inner, loaded, convs, options, answers), strict=True):
        for o in options:
            assert b[o] == pytest.approx(single[o], rel=1e-3, abs=1e-7)


def test_a_conversation_asked_again_reads_only_its_new_turns(scoring):
    """The prefix store (issue 19): a prompt that extends one read before (SVO's sliders, each carrying
    the earlier ones) reads only its new tokens, in a batch beside a row with nothing stored (an empty known
    prefix, its padding masked), and its probabilities equal reading it whole; the extended prompt's entry replaces
    the old one."""
    inner, loaded = scoring
    store = loaded.prefixes
    letters = ["A", "B", "C"]
    first = [user(f"Round {i}. Pick one: A. keep 50  B. keep 40, give 10  C. keep 30, give 30. Letter?")
             for i in range(2)]
    inner.answer_probs_batch(first, letters)
    assert len(store) == 2
    second = [c + [{"role": "assistant", "content": "B"},
                   {"role": "user", "content": "Next round. A. keep 60  B. keep 45, give 20  C. keep 20, give 50."}]
              for c in first]
    # Its own system prompt: it shares fewer than MIN_TOKENS with anything stored, so its known prefix is empty.
    fresh = [{"role": "system", "content": "Answer briefly."}, *user("An unrelated question: A, B or C?")]
    before_read, before_reused = loaded.read_tokens, loaded.reused_tokens
    got = inner.answer_probs_batch([*second, fresh], letters)
    reused, read = loaded.reused_tokens - before_reused, loaded.read_tokens - before_read

    def n_tokens(conv):
        text = loaded.tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        return len(loaded.tokenizer(text, add_special_tokens=False)["input_ids"])

    assert reused == sum(n_tokens(c) for c in first), "the stored first rounds were read again"
    assert read == sum(n_tokens(c) for c in [*second, fresh]) - reused
    assert len(store) == 3  # the two extended rounds replaced their first rounds; the fresh one is new
    for g, w in zip(got, _whole(inner, loaded, [*second, fresh], letters), strict=True):
        for o in letters:
            assert g[o] == pytest.approx(w[o], rel=1e-3, abs=1e-7)


def test_conversations_asked_in_rounds_keep_hitting_a_store_too_small_for_all(scoring, monkeypatch):
    """SVO's pattern beyond the store's budget: 6 conversations asked again every round with one more turn,
    in batches of 2, a store that holds about 3 of them. Read in a fixed order, each new entry would push
    out the one a later batch needs (least recently used first), so nothing would hit; reading the rows
    with a stored prefix first (``_stored_first``) keeps about as many hitting as fit."""
    from valdemo.config import reload_settings
    from valdemo.models.prefix import PrefixStore

    inner, loaded = scoring
    monkeypatch.setenv("VALDEMO_LOCAL_BATCH", "2")
    reload_settings()
    # Each its own system prompt, so that conversations share no prefix (only their own earlier turns hit).
    convs = [[{"role": "system", "content": f"{c}{c}{c} answers with one letter."},
              *user("About the weather and the sea, " * (3 + c % 2) + "A or B?")] for c in range(6)]

    def rounds(reorder: bool) -> list[int]:
        loaded.prefixes = PrefixStore(2**40)
        sizes = []
        if not reorder:
            monkeypatch.setattr(type(inner), "_stored_first", lambda self, loaded_, convs_, order, bs: order)
        grown = [list(c) for c in convs]
        for r in range(4):
            before = loaded.reused_tokens
            inner.answer_probs_batch(grown, ["A", "B"])
            sizes.append(loaded.reused_tokens - before)
            if r == 0:  # the budget: about half of the first round's entries
                loaded.prefixes.budget = loaded.prefixes.bytes // 2
            grown = [g + [{"role": "assistant", "content": "A"}, {"role": "user", "content": f"Round {r}: A or B?"}]
                     for g in grown]
        monkeypatch.undo()
        monkeypatch.setenv("VALDEMO_LOCAL_BATCH", "2")
        return sizes

    try:
        fixed = rounds(reorder=False)
        reordered = rounds(reorder=True)
    finally:
        reload_settings()
    assert sum(reordered[2:]) > 2 * sum(fixed[2:]), (fixed, reordered)
    assert all(n > 0 for n in reordered[2:]), reordered


def test_generation_reads_stored_prompts_once_with_the_same_replies(scoring):
    """chat_batch uses the prefix store too (issue 19): a batch generated again with another seed (DeNEVIL's K
    samples) reads one token per prompt, and greedy replies equal those generated with the store off."""
    inner, loaded = scoring
    convs = [user("Name a colour."), user("Write one sentence about rivers and the sea.")]
    params = GenParams(max_new_tokens=12)
    saved, loaded.prefixes = loaded.prefixes, None
    try:
        whole = [r.text for r in inner.chat_batch(convs, params)]
    finally:
        loaded.prefixes = saved
    first = inner.chat_batch(convs, params)
    before_read, before_reused = loaded.read_tokens, loaded.reused_tokens
    again = inner.chat_batch(convs, GenParams(max_new_tokens=12, temperature=0.9, seed=3))
    assert loaded.read_tokens - before_read == len(convs), "stored prompts were read again"
    assert loaded.reused_tokens - before_reused > 20 * len(convs)
    assert all(r.text.strip() for r in again)
    for a, b in zip(whole, first, strict=True):
        assert a.split()[:3] == b.text.split()[:3]


def test_greedy_rows_leave_the_batch_when_they_end_with_generates_replies(scoring):
    """Greedy chat_batch drops a row from the batch once it ends (``_greedy``, issue 19): the same replies
    and finish reasons as ``generate()`` on the same batch, short and long replies, capped and stopped."""
    inner, loaded = scoring
    loaded.prefixes = None
    convs = [user("Say yes."), user("Count from one to twenty in words."), user("Name a colour. One word."),
             user("Describe a forest in three sentences.")]
    params = GenParams(max_new_tokens=24)
    pruned = inner.chat_batch(convs, params)
    inner.PRUNED_GREEDY = False
    try:
        reference = inner.chat_batch(convs, params)
    finally:
        inner.PRUNED_GREEDY = True
    assert [r.text for r in pruned] == [r.text for r in reference]
    assert [r.finish_reason for r in pruned] == [r.finish_reason for r in reference]
    assert {r.finish_reason for r in pruned} == {"stop", "length"}, "the batch should mix ended and capped rows"


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_answers_side_by_side_equal_answers_read_one_per_row(scoring, attention):
    """Option scoring reads all answers in one row per prompt under a block-diagonal mask (``_answers_forward``,
    issue 19) instead of repeating the prompt cache per answer: the same probabilities, with answers of
    different lengths (a boundary token after each), for the SDPA and the eager attention kernels."""
    inner, loaded = scoring
    convs = [user("Is the sea salty? Answer Yes or No."), user("Pick A, B or C. Which is a colour? A. red B. run C. ten")]
    options, answers = ["Yes", "No", "C"], {"Yes": "Yes, it is salty", "No": "No", "C": "C. ten"}
    saved = loaded.model.config._attn_implementation
    loaded.model.set_attn_implementation(attention)
    try:
        side_by_side = inner.answer_probs_batch(convs, options, answers=answers)
        inner.TREE_ANSWERS = False
        repeated = inner.answer_probs_batch(convs, options, answers=answers)
    finally:
        inner.TREE_ANSWERS = True
        loaded.model.set_attn_implementation(saved)
    assert loaded.model.config._attn_implementation == saved
    for a, b in zip(side_by_side, repeated, strict=True):
        assert set(a) == set(options)
        for o in options:
            assert a[o] == pytest.approx(b[o], rel=1e-3, abs=1e-7)
    assert max(side_by_side[0], key=side_by_side[0].get) in options


def test_streaming_pieces_join_to_the_full_reply(local_model_nocache):
    conv = user("Describe the sea in one sentence.")
    params = GenParams(max_new_tokens=24)
    pieces = list(local_model_nocache.stream(conv, params))
    assert len(pieces) > 1
    assert "".join(pieces) == local_model_nocache.chat(conv, params).text


def test_seeded_sampling_is_reproducible_and_seeds_differ(local_model_nocache):
    conv = user("Invent a name for a cat.")
    a = local_model_nocache.chat(conv, GenParams(max_new_tokens=10, temperature=1.0, seed=1)).text
    b = local_model_nocache.chat(conv, GenParams(max_new_tokens=10, temperature=1.0, seed=1)).text
    assert a == b
    others = {local_model_nocache.chat(conv, GenParams(max_new_tokens=10, temperature=1.0, seed=s)).text
              for s in range(2, 6)}
    assert len(others | {a}) > 1


def test_bad_conversation_is_a_clear_error(local_model_nocache):
    with pytest.raises(ModelError, match="role"):
        local_model_nocache.chat([{"role": "wizard", "content": "hi"}])
    with pytest.raises(ModelError, match="non-empty"):
        local_model_nocache.chat([])


def test_a_small_tail_batch_joins_the_one_before():
    """chat_batch's padded batches: a tail of at most a quarter of the batch size decodes with the batch before
    (it would cost nearly a full batch's decode steps alone); memory grows by at most a quarter."""
    from valdemo.models.local import generation_chunks

    assert generation_chunks(list(range(20)), 16) == [list(range(20))]
    assert [len(c) for c in generation_chunks(range(21), 16)] == [16, 5]
    assert [len(c) for c in generation_chunks(range(36), 16)] == [16, 20]
    assert [len(c) for c in generation_chunks(range(10), 16)] == [10]
    assert [len(c) for c in generation_chunks(range(3), 1)] == [1, 1, 1]
    assert generation_chunks([], 16) == []
