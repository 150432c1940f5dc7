"""Value space (UniVaR): embeddings of models' answers to value-eliciting questions.

UniVaR (Cahyawijaya et al., 2024; public code HLTCHKUST/UniVaR, Apache-2.0)
represents the values of a language model as embeddings of its answers to
value-eliciting questions, trained so that question-answer (QA) sets from the
same source land close together; models are then compared by projecting the
embeddings (UMAP) and by k-nearest-neighbour source identification.

This module does the same on a CPU, offline:

* **sources** are model spec x persona (system prompt): the bundled model under
  a few personas is already several sources;
* **answers** come from ``chat_batch`` (cached by the response cache); empty
  answers are counted and left out, never embedded as if they were answers;
* **embeddings** of each QA pair (``"Q: ... A: ..."``) come from a frozen
  sentence encoder (:mod:`valdemo.embed`);
* a **value head** (a small MLP over the frozen embeddings) is trained with
  UniVaR's objective: two views of one source, each the mean-pooled head output
  of 1..lambda QA pairs, symmetric InfoNCE over the sources in a batch
  (CLIP-style). Questions are split into train/test; kNN source identification
  accuracy on the test questions is reported for the raw encoder and the head;
* the **explorer**: UMAP or PCA projections (cached per embedding set), plotly
  scatter, nearest neighbours, centroid distances between sources, exports.

The package is split by concern: :mod:`.sets` (QA pairs, questions, personas,
generation, embedded sets and where they are kept), :mod:`.encoding` (encoders),
:mod:`.training` (the value head), :mod:`.evaluation` (source identification),
:mod:`.projection` (projections, figures, exports), :mod:`.demo` (the bundled
set) and :mod:`.pipeline` (one-call runs and the value profile's helpers).
``from valdemo import univar`` gives every public name.

Nothing here imports gradio.
"""

from __future__ import annotations

from .demo import (  # noqa: F401
    DEMO_EMB,
    DEMO_HEAD,
    DEMO_HEAD_WEIGHTS,
    DEMO_META,
    DEMO_PROJ,
    DEMO_QA,
    demo_available,
    demo_head_available,
    demo_projection_params,
    demo_projection_space,
    load_demo,
    load_demo_head,
)
from .encoding import (  # noqa: F401
    MAX_LAMBDA,
    VIEW_SEPARATOR,
    count_over_limit,
    encode_views,
    resolve_encoder,
    token_limit,
    view_text,
)
from .evaluation import (  # noqa: F401
    DEFAULT_K,
    EVAL_AT,
    IDENT_COLUMNS,
    LANGUAGE_COLUMNS,
    MAX_K,
    Identification,
    hits_at,
    identification_rows,
    identify,
    knn_scores,
    language_report,
    probe_scores,
    raw_knn_metrics,
    split_questions,
)
from .pipeline import (  # noqa: F401
    QUICK_SIZE,
    embed_qa,
    identifications,
    profile_questions,
    profile_result,
    run_pipeline,
    summarise,
    to_result,
)
from .projection import (  # noqa: F401
    ProjectionParams,
    export_points,
    heatmap_figure,
    neighbours,
    parquet_available,
    pca,
    points_frame,
    project,
    project_set,
    ranked_pairs,
    scatter_figure,
    search_matches,
    source_centroids,
    source_distances,
    write_figure_html,
    write_qa_jsonl,
)
from .sets import (  # noqa: F401
    ASSETS,
    COLOR_BY,
    DEFAULT_MAX_NEW_TOKENS,
    DEMO_DIR,
    FAMILIES,
    KS,
    LOCAL_OWNER,
    MAX_POINTS,
    PERSONAS_PATH,
    PROJECTIONS,
    QUESTIONS_PATH,
    REGISTRY_SIZE,
    UMAP_METRICS,
    UNIVAR_ENCODERS,
    EmbeddedSet,
    Persona,
    ProgressFn,
    QAPair,
    QASet,
    Question,
    _digest,
    _normalise,
    _registry_get,
    check_same_encoder,
    forget_cache,
    generate_qa,
    get_embedded,
    get_qa_set,
    is_univar_encoder,
    list_sets,
    load_personas,
    load_qa_pairs,
    load_questions,
    looks_like_qa_file,
    parse_model_list,
    pick_questions,
    qa_set_from_pairs,
    remember,
    select_personas,
    source_name,
    space_label,
)
from .training import (  # noqa: F401
    PAPER_TEMPERATURE,
    HeadParams,
    ValueHead,
    chunk_views,
    draw_views,
    evaluate_head,
)
