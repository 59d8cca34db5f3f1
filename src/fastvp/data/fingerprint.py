"""What made a dataset: the digest of a generation's recipe (metadata.json's
"fingerprint") and ``dataset_fingerprint``, which the checks of a resumed training run
compare (``fingerprint_difference``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..files import digest
from .dataset import Dataset
from .layout import SPLITS, split_sizes

#: What a dataset's fingerprint is made of, in the order a difference is told.
FINGERPRINT_FIELDS = ("layout", "format", "interaction", "scheme", "problem", "seed", "n_examples",
                      "rows", "split", "config", "content")


def recipe_digest(meta: dict) -> str:
    """The fingerprint of a fastvp generation: a digest of its format, config, seed,
    number of examples and split, and of its problem where it has one (``metadata.json``
    holds it as "fingerprint")."""
    keys = ("format", "config", "seed", "n_examples", "split") + (("problem",) if "problem" in meta else ())
    return digest({k: meta.get(k) for k in keys})


def dataset_fingerprint(ds: Dataset) -> dict:
    """What made the examples of `ds`: its layout and format, physics (config, scheme,
    interaction), problem (a dataset of ``fastvp.problems``: its name, parameters and quiet
    start), seed, number of examples, split, and the rows of the folder it covers.

    A folder of the authors' layout has no seed: the SHA-256 of its Cond.npy stands for
    it ("content"). "digest" condenses all of it; "path" says where it was read (not part
    of the digest: a moved folder is the same data).
    """
    meta = ds.metadata
    start, stop, _ = ds.indices.indices(ds._total())
    out = {"layout": "fastvp" if meta else "authors", "format": meta.get("format", "authors"),
           "interaction": ds.config.interaction, "scheme": ds.config.scheme,
           "seed": meta.get("seed"), "n_examples": ds._total(), "rows": [start, stop],
           "split": dict(zip(SPLITS, split_sizes(ds._total()))), "config": ds.config.to_dict()}
    if ds.problem is not None:
        out["problem"] = ds.problem
    if not meta:
        out["content"] = hashlib.sha256((Path(ds.path) / "Cond.npy").read_bytes()).hexdigest()[:16]
    out["digest"] = digest(out)
    return {**out, "path": str(ds.path)}


def fingerprint_difference(a: dict, b: dict, names: tuple[str, str] = ("a", "b")) -> list[str]:
    """What differs between two dataset fingerprints, each value after its name:
    ["interaction: run electrostatic, data gravitational", ...] for names ("run", "data");
    config fields one by one. Empty when they agree."""
    def told(key, x, y) -> str:
        return f"{key}: {names[0]} {x}, {names[1]} {y}"

    out = []
    for key in FINGERPRINT_FIELDS:
        x, y = a.get(key), b.get(key)
        if key in ("config", "problem") and isinstance(x, dict) and isinstance(y, dict):
            prefix = "problem " if key == "problem" else ""
            out += [told(prefix + k, x.get(k), y.get(k)) for k in sorted(set(x) | set(y))
                    if x.get(k) != y.get(k) and k not in ("scheme", "interaction")]
        elif x != y:
            out.append(told(key, x, y))
    return out
