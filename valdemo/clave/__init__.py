"""CLAVE (Yao et al., NeurIPS 2024 Datasets & Benchmarks, "CLAVE: An Adaptive Framework for
Evaluating Values of LLM Generated Responses", arXiv 2407.10725).

A large (judge) model writes *value concepts*; a small model is calibrated on fewer than 100
human labels per value to map (value, text, concepts) to a label. This package is our own
reading of the method (the paper released no code we copy), split by concern:

- :mod:`.inputs`: label names, input checks, samples (bundled set, uploads, imports);
- :mod:`.storage`: the labelling queue per annotator, saved recognizers;
- :mod:`.export`: export to files, append-only sync with a hub dataset or folder;
- :mod:`.concepts`: concepts written by the judge, parsed, edited, stored;
- :mod:`.recognizers`: the small models;
- :mod:`.evaluation`: held-out agreement with people beside uncalibrated baselines;
- :mod:`.plots`: confusion matrices and the learning curve (plotly, no gradio).

``from valdemo import clave`` keeps every public name of the former single module. No gradio here.
"""

from __future__ import annotations

from .. import store as st  # noqa: F401  (the tab reads stored concepts through it)
from ..values import SCHWARTZ, get_value  # noqa: F401
from .concepts import (  # noqa: F401
    CONCEPT_MAX_CHARS,
    CONCEPT_SYSTEM,
    MAX_CONCEPTS,
    PROTOCOL_DIR,
    ConceptProtocol,
    ConceptResult,
    concept_prompt,
    concepts_to_text,
    extract_concepts,
    extract_concepts_many,
    load_concept_protocol,
    parse_concepts,
    parse_response_concepts,
    read_concepts,
    response_concepts,
    save_concepts,
    stored_concepts,
    text_to_concepts,
)
from .evaluation import (  # noqa: F401
    ACC_DEF,
    CURVE_SIZES,
    ECE_BINS,
    F1_DEF,
    LLM_OPTIONS,
    LLM_SYSTEM,
    SELECTIONS,
    SUMMARY_HEADERS,
    UNCALIBRATED,
    USES_LABELS,
    agreement,
    calibrate,
    calibrate_store,
    ece,
    embed_zero_shot,
    fit_temperature,
    goal_comparison,
    krippendorff_alpha_nominal,
    llm_prompt,
    llm_zero_shot,
    save_calibration,
    select_rows,
    summary_table,
    to_result,
)
from .export import (  # noqa: F401
    EXPORT_FIELDS,
    HUB_SUBDIR,
    export_labels,
    export_rows,
    hub_token,
    is_local_target,
    pull_labels,
    push_labels,
    write_rows,
)
from .inputs import (  # noqa: F401
    BUNDLED_SAMPLES,
    CUSTOM_VALUES_FILE,
    DEFAULT_TARGET,
    GOLD,
    LABEL_NAMES,
    LABELS,
    METHOD_TITLES,
    METHODS,
    ProgressFn,
    Sample,
    bundled_samples,
    check_annotator,
    check_label,
    check_value,
    custom_values,
    ensure_bundled,
    import_file,
    import_samples,
    load_custom_values,
    read_samples,
    register_value,
    value_info,
)
from .plots import (  # noqa: F401
    SHORT,
    confusion_figure,
    curve_figure,
)
from .recognizers import (  # noqa: F401
    DEFAULT_SMALL_MODEL,
    NO_CONCEPTS,
    SMALL_MODELS,
    EmbeddingHead,
    FineTunedEncoder,
    LoraCausalLM,
    Recognizer,
    SmallModel,
    _Embeddings,
    concept_text,
    make_small_model,
    softmax,
    train_recognizer,
    value_classes,
)
from .storage import (  # noqa: F401
    _loaded,
    check_recognizer_name,
    get_recognizer,
    latest_recognizer,
    list_recognizers,
    next_sample,
    predict_text,
    profile_result,
    progress,
    recognizer_dir,
    recognizer_label,
    save_recognizer,
    submit_label,
    texts_concepts,
    training_rows,
    undo_last,
    value_card,
)
