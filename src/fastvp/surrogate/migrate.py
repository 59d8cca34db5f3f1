"""Training checkpoints (out/checkpoint.pt) from before fastvp 0.1.0, read as today's.

Two old formats are read, both written before the two trainers shared one loop
(``loop.fit``), and turned into the current ones so that such a run can be resumed:

* "fastvp-train/1" (PDE-NHF's ``train``) -> "fastvp-train/2": the settings that did not
  exist then get the values that reproduce that loop, history rows become 1-based with an
  ``elapsed`` column, no epoch is kept yet;
* "fastvp-baseline-train/1" (``train_baseline``) -> "fastvp-baseline-train/2": its best
  model (then chosen by validation loss) stays kept until an epoch of the resumed run is
  scored by the new rule (validation W1); it ran without a learning-rate scheduler.

Model files need no migration. tests/data/legacy-checkpoints holds runs of both formats.
"""

from __future__ import annotations

import math

#: The old format -> the format it is read as.
FORMATS = {"fastvp-train/1": "fastvp-train/2",
           "fastvp-baseline-train/1": "fastvp-baseline-train/2"}


def upgrade(ck: dict, fmt: str, config_cls) -> dict | None:
    """`ck` in format `fmt`, if it is of an old format (``FORMATS``) that became `fmt`;
    None for any other checkpoint (left to the caller to refuse).

    config_cls: the run's config class today (``TrainConfig`` or ``BaselineConfig``), whose
    defaults fill the settings the old checkpoint does not hold.
    """
    old = ck.get("format")
    if FORMATS.get(old) != fmt:
        return None
    if old == "fastvp-train/1":
        return _nhf_train_1(ck, config_cls)
    return _baseline_train_1(ck, config_cls)


def _nhf_train_1(ck: dict, config_cls) -> dict:
    """A "fastvp-train/1" checkpoint as a "fastvp-train/2" one."""
    old = dict(ck["config"])
    # the settings that did not exist then, at the values that reproduce that loop
    then = dict(warmup=0, clip=None, curriculum_steps=None, curriculum_fraction=0.0, init_scale=1.0,
                lr_pool=1.0, lr_phi0=1.0, val_examples=None)
    legacy = config_cls(**{**then, **{k: v for k, v in old.items()
                                      if k in config_cls.__dataclass_fields__}})
    history, elapsed = [], 0.0
    for row in ck["history"]:
        elapsed += row.get("seconds", 0.0)
        history.append({**row, "epoch": row["epoch"] + 1, "elapsed": elapsed, "kept": None})
    return {**ck, "format": FORMATS["fastvp-train/1"], "config": {**legacy.to_dict(), **old},
            "history": history, "losses": list(ck.get("epoch_losses", [])),
            "best_score": math.inf, "best_epoch": None, "best_state": None, "elapsed": elapsed,
            "bad_steps": ck.get("bad_steps", 0), "bad_in_a_row": ck.get("bad_in_a_row", 0)}


def _baseline_train_1(ck: dict, config_cls) -> dict:
    """A "fastvp-baseline-train/1" checkpoint as a "fastvp-baseline-train/2" one."""
    history = [{**{k: v for k, v in row.items() if k != "time_s"}, "elapsed": row.get("time_s", 0.0)}
               for row in ck["history"]]
    best_epoch = next((row["epoch"] for row in history if row.get("val_loss") == ck["best_loss"]),
                      None)
    done = int(ck["epoch_examples"])
    losses = [ck["epoch_loss"] / done] * int(ck["position"]) if done else []
    return {**ck, "format": FORMATS["fastvp-baseline-train/1"],
            "config": {**config_cls().to_dict(), **ck["config"]},
            "history": history, "losses": losses, "best_score": math.inf,
            "best_epoch": best_epoch, "best_state": ck["best_model"],
            "elapsed": float(ck.get("seconds", 0.0)), "scheduler": None}
