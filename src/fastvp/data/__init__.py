"""Dataset folders in the layout of the authors' generator, plus fastvp's metadata.

``layout``: the files of a folder (one float64 ``.npy`` per snapshot and variable,
``Cond.npy``, a problem's ``Params.npy``, the diagnostics of every step ``diag_*.npy``,
fastvp's ``metadata.json``) and its splits;
``dataset``: ``load_dataset`` and the lazily read ``Dataset``, with the checks of what a
folder holds; ``fingerprint``: what made a dataset, for the checks of a resumed training
run; ``writer``: the resumable sharded writer (files appear complete or not at all, a
killed run resumes to the same bytes with any chunk size and any number of ranks);
``generate``: ``generate_dataset``, the simulation of the examples and their writing.
"""

from .dataset import Dataset, load_dataset, require_finite, require_gaussian
from .fingerprint import dataset_fingerprint, fingerprint_difference, recipe_digest
from .generate import generate_dataset
from .layout import PARTIAL, PROGRESS

__all__ = [
    "Dataset",
    "load_dataset",
    "generate_dataset",
    "require_finite",
    "require_gaussian",
    "dataset_fingerprint",
    "fingerprint_difference",
    "recipe_digest",
    "PARTIAL",
    "PROGRESS",
]
