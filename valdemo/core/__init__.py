"""The method contract shared by all five methods.

- :mod:`valdemo.core.result`: :class:`Metric`, :class:`Failures`, :class:`Result`, the one
  shape every method returns and every page (tab, CLI, profile, report) renders.
- :mod:`valdemo.core.metrics`: accuracy, macro-F1 over a declared label set, Cohen's kappa,
  Krippendorff's alpha, Wilson and bootstrap intervals.

Nothing here imports gradio or a model backend.
"""
