"""What every subcommand shares: the common flags, flags declared from config fields, and
the rule for user errors (one line on stderr naming the option, exit status 2).

A leaf module: it imports nothing of the other subcommands.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from ..backend import DTYPES

#: Python words in error messages and the CLI words a user typed instead.
CLI_WORDS = {
    "resume=True": "--resume", "overwrite=True": "--overwrite", "extrapolate=True": "--extrapolate",
    "allow_mismatch=True": "--allow-mismatch", "n_examples": "--examples", "out_dir": "--out",
    "chunk_size": "--chunk", "name_or_path": "--model", "sigma_q_range": "--sigma-q-range",
    "sigma_p_range": "--sigma-p-range", "sigma_range": "--sigma-range",
}

#: The rule of every command's default --dtype, and why.
DTYPE_RULE = ("float64 for what a command writes as data or checks against theory (simulate, "
              "sample, check-physics: the authors' layout is float64, samples are compared "
              "with PIC to round-off, rates with linear theory), float32 "
              "for the network work that is trained or measured (train, evaluate, demo: "
              "about twice as fast on CPUs; W1 is computed in float64 anyway)")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit status 2), naming the
    option and value, with a pointer to --help instead of the usage block."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def error_text(exc: BaseException) -> str:
    """The message of an error as a user should read it: an OSError of the filesystem as
    "<cause>: '<path>'" (without "[Errno N]"), anything else as its text."""
    if isinstance(exc, OSError) and exc.strerror:
        paths = [repr(str(f)) for f in (exc.filename, exc.filename2) if f is not None]
        return f"{exc.strerror}: {' -> '.join(paths)}" if paths else exc.strerror
    return str(exc)


def check_out(path, kind: str = "folder", suffix: str | None = None) -> None:
    """--out: a `kind` ("folder" or "file", with `suffix`) that can be written; checked
    before any work starts (ValueError naming --out, the value and the true cause)."""
    from ..files import check_writable

    if suffix is not None and not str(path).endswith(suffix):
        raise ValueError(f"--out must name a {suffix} file, got {str(path)!r}")
    check_writable(path, "--out", kind)


@dataclass(frozen=True)
class Flag:
    """A flag that mirrors a config field: --field-name, its type and help text.

    nargs / metavar as argparse's; the default shown is the config's own.
    """

    field: str
    type: type
    help: str
    nargs: int | str | None = None
    metavar: str | None = None
    choices: tuple | None = None

    @property
    def option(self) -> str:
        return "--" + self.field.replace("_", "-")


#: Every config field a command line may set: "field  type  help" (`nargs` and choices are
#: added below for the fields that need them).
TABLE = """
box_length          float  box length L (periodic domain [0, L))
cells               int    grid cells Nx
n_particles         int    particles N per example
charge              float  charge q of a particle (the source of the field)
charge_over_mass    float  q/m in the acceleration
dt                  float  time step
steps               int    time steps (T = steps * dt); for train: leapfrog steps K of the flow
save_every          int    steps between two snapshots (must divide --steps)
scheme              str    leapfrog, or the authors' generator step for step
interaction         str    repelling charges (electrostatic) or attracting masses (gravitational)
mu_q                float  mean initial position (default: L / 2)
mu_p                float  mean initial momentum
sigma_range         float  range LO HI of the per-example sigma_q and sigma_p (both)
sigma_q_range       float  LO HI of the per-example sigma_q (default: --sigma-range; sample: the model's)
sigma_p_range       float  LO HI of the per-example sigma_p (default: --sigma-range; sample: the model's)
epochs              int    passes over the training split
batch_size          int    examples per optimiser step; under torchrun the global batch
lr                  float  Adam's (peak) learning rate
warmup              int    optimiser steps of linear learning-rate warm-up
schedule            str    learning-rate schedule after the warm-up
min_lr_ratio        float  final learning rate of the cosine schedule, as a fraction of lr
clip                float  clip the gradient norm to this value
checkpoint_every    int    also checkpoint every this many optimiser steps
max_bad_steps       int    consecutive non-finite steps tolerated (each skipped)
hidden              int    hidden width (Deep Set H; baseline: its MLPs' width, default 80)
curriculum_steps    int    train with this K first (cheaper), then with --steps; 0: no curriculum
curriculum_fraction float  fraction of the optimiser steps run with --curriculum-steps
init_scale          float  V's output weights start at this multiple of torch's initialisation
lr_pool             float  learning-rate factor of phi's second layer (W2, b2): ~1/N
lr_phi0             float  learning-rate factor of phi's first layer (w1, b1)
val_examples        int    validation examples whose NLL is scored each epoch; 0: all of them
method              str    the gradient's backward: hand-derived (fast) or the same fused by torch.compile
val_w1_examples     int    validation examples whose W1 at T is scored each epoch
snapshots           bool   also supervise the intermediate snapshots
"""


def _table() -> dict[str, Flag]:
    from ..config import INTERACTIONS, SCHEMES
    from ..surrogate.loop import SCHEDULES

    types = {"int": int, "float": float, "str": str, "bool": bool}
    extra = {"scheme": dict(choices=SCHEMES), "interaction": dict(choices=INTERACTIONS),
             "schedule": dict(choices=SCHEDULES), "checkpoint_every": dict(metavar="STEPS"),
             "method": dict(choices=("fast", "compiled")),
             **{name: dict(nargs=2, metavar=("LO", "HI"))
                for name in ("sigma_range", "sigma_q_range", "sigma_p_range")}}
    out = {}
    for line in TABLE.strip().splitlines():
        name, kind, text = line.split(maxsplit=2)
        out[name] = Flag(name, types[kind], text, **extra.get(name, {}))
    return out


def flags(*names: str) -> tuple[Flag, ...]:
    """The flags of these config fields, from the one table of every config flag."""
    table = _table()
    return tuple(table[n] for n in names)


def add_flags(parser: argparse.ArgumentParser, flags: Iterable[Flag], defaults) -> None:
    """Declare `flags` on `parser`; their values stay unset (None) unless given, so that a
    config made from them keeps its own defaults (and a resumed run its saved settings).
    The help shows the default of `defaults` (an object with the fields, or None)."""
    for f in flags:
        default = getattr(defaults, f.field, None)
        shown = default if not isinstance(default, (tuple, list)) else " ".join(map(str, default))
        text = f.help if default is None or "default:" in f.help else f"{f.help} (default: {shown})"
        kw = dict(type=f.type, default=None, help=text, dest=f.field)
        if f.type is bool:
            kw = dict(action="store_true", default=None, help=f.help, dest=f.field)
        for key in ("nargs", "metavar", "choices"):
            if getattr(f, key) is not None:
                kw[key] = getattr(f, key)
        parser.add_argument(f.option, **kw)


def given(args: argparse.Namespace, flags: Iterable[Flag]) -> dict:
    """The config fields the user gave on the command line: {field: value}."""
    out = {}
    for f in flags:
        value = getattr(args, f.field, None)
        if value is not None:
            out[f.field] = tuple(value) if isinstance(value, list) else value
    return out


def add_common(parser: argparse.ArgumentParser, dtype: str = "float64",
               dtype_help: str = "", dtypes: Iterable[str] = tuple(DTYPES),
               seed_help: str = "random seed (default: 0; a resumed run keeps its own)") -> None:
    """--device, --dtype, --seed, --threads, --quiet, --debug: shared by every subcommand.

    dtype: this command's default, by ``DTYPE_RULE``; dtype_help: what it adds to it;
    seed_help: what --seed does in this command.
    """
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--dtype", default=dtype, choices=sorted(dtypes),
                        help=f"floating-point precision (default: {dtype}{dtype_help}; the rule: "
                        f"{DTYPE_RULE})")
    parser.add_argument("--seed", type=int, default=None, help=seed_help)
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: the cores left idle by other processes)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error")


def cli_message(message: str) -> str:
    """An error message with the Python names of arguments replaced by the CLI's flags."""
    for word, flag in CLI_WORDS.items():
        message = re.sub(rf"(?<![\w-]){re.escape(word)}(?![\w])", flag, message)
        message = message.replace(f"{flag} ({flag})", flag)  # "resume=True (--resume)"
    return message


def check_threads(threads) -> None:
    """--threads: None (the default) or an integer >= 1."""
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be an integer >= 1, got {threads!r}")


def seed(args: argparse.Namespace) -> int:
    """--seed, 0 when not given."""
    return 0 if args.seed is None else args.seed
