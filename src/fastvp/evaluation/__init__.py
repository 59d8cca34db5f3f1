"""Evaluation of PDE-NHF models against PIC and the demo.

``evaluate_models(models, data, out)``: the paper's Tables 1-3 and Fig. 2 on a dataset's
test split, written as report.md, results.json and figures (``fastvp evaluate``);
``demo(out_dir)``: PIC and a surrogate on one paper-preset batch (``fastvp demo``).

Modules: ``inputs`` (models, baseline, test split, physics checks), ``sampling`` (sampling
and timing on the split), ``evaluate`` (tables, energy, the entry point), ``report`` (the
markdown), ``figures`` (the report's and the demo's figures), ``demo``.
"""

from .demo import demo
from .evaluate import evaluate_models
from .inputs import physics_mismatch
from .report import describe_training, report_markdown

__all__ = ["evaluate_models", "demo", "physics_mismatch", "describe_training", "report_markdown"]
