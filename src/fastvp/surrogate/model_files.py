"""The files of a Surrogate: its safetensors + JSON format, the bundled models, and the
authors' checkpoints (``ModelFiles``, a mixin of ``model.Surrogate``)."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from ..config import PICConfig
from ..files import file_format, model_path, read_model_file, save_model_file


#: Keys and shapes of a state_dict, for hidden size H (the official checkpoint has H = 256).
def state_shapes(hidden: int) -> dict[str, tuple[int, ...]]:
    h = hidden
    return {
        "a": (1,),
        "V_net.phi.0.weight": (h, 1), "V_net.phi.0.bias": (h,),
        "V_net.phi.2.weight": (h, h), "V_net.phi.2.bias": (h,),
        "V_net.rho.0.weight": (h, h), "V_net.rho.0.bias": (h,),
        "V_net.rho.2.weight": (1, h), "V_net.rho.2.bias": (1,),
    }


FORMAT = "fastvp-surrogate/1"
WEIGHTS_PACKAGE = "fastvp"


class ModelFiles:
    """save / load / bundled / from_official of ``Surrogate`` (which inherits them)."""

    def metadata(self) -> dict:
        """The JSON of the model file: format, config, steps, hidden, dtype; a Fourier
        potential's kind and modes; the problem it stands for (when not the paper's)."""
        meta = {"format": FORMAT, "config": self.config.to_dict(), "steps": self.steps,
                "hidden": self.V_net.hidden, "dtype": str(self.dtype).removeprefix("torch.")}
        if self.potential_kind != "deepset":
            meta["potential"] = {"kind": self.potential_kind, "modes": self.V_net.modes}
        if self.problem_entry is not None:
            meta["problem"] = self.problem_entry
        return meta

    def save(self, path) -> Path:
        """Write `path` (.safetensors, suffix added if missing) and its JSON config beside it.

        Both files appear complete or not at all (``files.save_model_file``). Returns the
        path of the weights; ``Surrogate.load`` reads it with or without the suffix.

        Example:
            >>> import tempfile, os, fastvp
            >>> path = os.path.join(tempfile.mkdtemp(), "my-model")
            >>> fastvp.Surrogate(hidden=8).save(path).name
            'my-model.safetensors'
            >>> fastvp.Surrogate.load(path).V_net.hidden
            8
        """
        meta = self.metadata()
        if getattr(self, "training_info", None):
            meta["training"] = self.training_info
        return save_model_file(path, self.state_dict(), meta)

    @classmethod
    def bundled(cls) -> list[str]:
        """Names of the models shipped in fastvp/weights."""
        root = resources.files(WEIGHTS_PACKAGE) / "weights"
        try:
            return sorted(f.name[: -len(".safetensors")] for f in root.iterdir()
                          if f.name.endswith(".safetensors"))
        except (FileNotFoundError, NotADirectoryError):
            return []

    @classmethod
    def load(cls, name_or_path) -> ModelFiles:
        """A model from a file written by ``save`` or a bundled name ("paper-1d").

        name_or_path: a file; or the name given to ``save`` (its ".safetensors" file);
        or a bundled model's name (``Surrogate.bundled()``). A file is read by its format,
        whatever its suffix: a fastvp .safetensors file, or the authors' checkpoint (a
        ``torch.save``d state_dict, read safely by ``from_official``). The model keeps the
        stored dtype, on the CPU; its ``training_info`` says how it was made (its JSON's
        "training" entry).

        Raises:
            FileNotFoundError: a path that does not exist.
            ValueError: neither a file nor a bundled name, or not a model file.

        Example:
            >>> import fastvp
            >>> "paper-1d" in fastvp.Surrogate.bundled()
            True
        """
        if not isinstance(name_or_path, (str, os.PathLike)):
            raise ValueError(f"name_or_path must be a model name or a path, got {name_or_path!r}")
        path = Path(name_or_path)
        if not path.exists() and model_path(path).is_file():
            path = model_path(path)
        if not path.exists():
            text = str(name_or_path)
            if os.sep in text or "/" in text or path.suffix:
                raise FileNotFoundError(f"model file {text!r} does not exist")
            names = cls.bundled()
            if text not in names:
                raise ValueError(f"name_or_path {text!r} is neither a file nor a bundled model; "
                                 f"bundled models: {names}")
            with resources.as_file(resources.files(WEIGHTS_PACKAGE) / "weights"
                                   / f"{text}.safetensors") as p:
                return cls._read(Path(p))
        if path.is_dir():
            raise ValueError(f"name_or_path {str(path)!r} is a folder, not a model file")
        return cls._read(path)

    @classmethod
    def _read(cls, path: Path) -> ModelFiles:
        if file_format(path) == "torch":
            return cls.from_official(path)
        state, meta = read_model_file(path)
        if meta is None and path.with_suffix(".json").exists():
            try:
                meta = json.loads(path.with_suffix(".json").read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"{str(path.with_suffix('.json'))!r} is not JSON: {exc}") from exc
        model = cls._from_state(state, meta or {}, str(path))
        model.training_info = (meta or {}).get("training")
        return model

    @classmethod
    def _from_state(cls, state: dict, meta: dict, source: str, dtype=None) -> ModelFiles:
        if not isinstance(state, dict):
            raise ValueError(f"{source!r} does not hold a state_dict, got {type(state).__name__}")
        kind = (meta.get("potential") or {}).get("kind", "deepset")
        if kind == "deepset":
            hidden = _deepset_hidden(state, source)
        else:
            hidden = int(meta.get("hidden", 0))
        _check_floats(state, source)
        try:
            config = PICConfig.from_dict(meta["config"]) if "config" in meta else PICConfig()
            steps = int(meta.get("steps", 25))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source!r} holds an invalid config: {exc}") from exc
        potential = meta.get("potential") or {}
        model = cls(config, steps=steps, hidden=hidden, potential=kind,
                    modes=int(potential.get("modes", 8)), problem=meta.get("problem"))
        _check_shapes(state, {k: tuple(v.shape) for k, v in model.state_dict().items()}, source)
        dtype = dtype or state["a"].dtype
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"{source!r} holds {dtype} weights: fastvp models are float32 or "
                             "float64")
        model.to(dtype=dtype)
        model.load_state_dict({k: v.to(dtype) for k, v in state.items()})
        return model

    @classmethod
    def from_official(cls, path, config: PICConfig | None = None) -> ModelFiles:
        """The authors' checkpoint (a torch.save'd state_dict), as a float64 model on the CPU.

        Loaded with ``weights_only=True`` (it is a pickle) and ``map_location="cpu"`` (it
        was saved from CUDA). Every key and shape is checked. `config` defaults to the
        paper preset with the official generator scheme, the data it was trained on.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"path must be a file path, got {path!r}")
        if not Path(path).is_file():
            raise FileNotFoundError(f"official checkpoint {str(path)!r} does not exist")
        try:  # from an open file: torch.load would dispatch a ".safetensors" name by its suffix
            with open(path, "rb") as fh:
                state = torch.load(fh, map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling errors come in many types
            raise ValueError(f"{str(path)!r} is not a torch state_dict: {exc}") from exc
        if isinstance(state, nn.Module):  # pragma: no cover - weights_only forbids it
            state = state.state_dict()
        config = config or PICConfig(scheme="official")
        return cls._from_state(dict(state) if isinstance(state, dict) else state,
                               {"config": config.to_dict()}, str(path), dtype=torch.float64)


def _deepset_hidden(state: dict, source: str) -> int:
    """H of a Deep Set state_dict, its keys and shapes checked (ValueError naming them)."""
    w = state.get("V_net.phi.0.weight")
    if not isinstance(w, torch.Tensor) or w.dim() != 2 or w.shape[1] != 1:
        raise ValueError(f"{source!r} is not a PDE-NHF model: no 'V_net.phi.0.weight' of shape "
                         f"[H, 1] (keys: {sorted(state)[:12]})")
    _check_shapes(state, state_shapes(w.shape[0]), source)
    return w.shape[0]


def _check_shapes(state: dict, shapes: dict, source: str) -> None:
    missing = sorted(set(shapes) - set(state))
    unexpected = sorted(set(state) - set(shapes))
    if missing or unexpected:
        raise ValueError(f"{source!r} has wrong keys: missing {missing}, "
                         f"unexpected {unexpected}")
    for k, shape in shapes.items():
        v = state[k]
        if not isinstance(v, torch.Tensor) or tuple(v.shape) != tuple(shape):
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"{source!r}: {k} must have shape {list(shape)}, got {got}")


def _check_floats(state: dict, source: str) -> None:
    for k, v in state.items():
        if not isinstance(v, torch.Tensor) or not v.is_floating_point() or not torch.isfinite(v).all():
            raise ValueError(f"{source!r}: {k} must hold finite floating-point numbers")
