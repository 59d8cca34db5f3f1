"""What every subcommand shares: the common flags, flags declared from config fields, and
the rule for user errors (one line on stderr naming the option, exit status 2).

A leaf module: it imports nothing of the other subcommands.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import typing
from collections.abc import Iterable
from dataclasses import dataclass

from ..backend import DTYPES
from ..config import INTERACTIONS, SCHEMES, PICConfig
from ..files import check_writable
from ..problems.paper import PaperInitial
from ..surrogate.baseline import BaselineConfig
from ..surrogate.loop import SCHEDULES, LoopConfig
from ..surrogate.train import TrainConfig

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


#: The flag that sets both paper ranges at once: no config field has it.
SIGMA_RANGE = "range LO HI of the per-example sigma_q and sigma_p (both)"


def _table() -> dict[str, Flag]:
    """Every config field a command line may set, its help from the field's metadata["help"]
    (a name in several configs: the first config's help), and --sigma-range."""
    extra = {"scheme": dict(choices=SCHEMES), "interaction": dict(choices=INTERACTIONS),
             "schedule": dict(choices=SCHEDULES), "checkpoint_every": dict(metavar="STEPS"),
             "method": dict(choices=("fast", "compiled")),
             "potential": dict(choices=("auto", "deepset", "fourier")),
             **{name: dict(nargs=2, metavar=("LO", "HI"))
                for name in ("sigma_range", "sigma_q_range", "sigma_p_range")}}
    helps = {"sigma_range": (float, SIGMA_RANGE)}
    for cls in (PICConfig, PaperInitial, LoopConfig, TrainConfig, BaselineConfig):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if "help" in f.metadata and f.name not in helps:
                helps[f.name] = (_scalar(hints[f.name]), f.metadata["help"])
    return {name: Flag(name, kind, text, **extra.get(name, {}))
            for name, (kind, text) in helps.items() if kind is not None}


def _scalar(hint) -> type | None:
    """The flag's type of a field's annotation: int, float, str or bool (of an Optional or a
    tuple, its element's); None if there is none (e.g. torch.dtype)."""
    if hint in (bool, int, float, str):
        return hint
    kinds = [_scalar(arg) for arg in typing.get_args(hint) if arg is not type(None)]
    return kinds[0] if kinds else None


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
               seed_help: str = "random seed (default: 0)") -> None:
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


def typed_flags(parser: argparse.ArgumentParser, argv: Iterable[str]) -> dict[str, str]:
    """{dest: the flag the user typed for it} of a (sub)command's options; a dest not typed
    gets its first option. Several flags of one dest (--particles, --n-particles): the one
    typed, also under each of the others' names ({"--particles": "--n-particles"})."""
    typed = {token.split("=", 1)[0] for token in argv if token.startswith("--")}
    options: dict[str, list[str]] = {}
    for action in parser._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if longs and action.dest != "help":
            options.setdefault(action.dest, []).extend(longs)
    out = {}
    for dest, names in options.items():
        flag = next((o for o in names if o in typed), names[0])
        out[dest] = flag
        out.update({o: flag for o in names if o != flag})
    return out


def cli_message(message: str, flags: dict[str, str] | None = None) -> str:
    """An error message with the Python names of arguments replaced by the CLI's flags.

    flags: ``typed_flags`` of the command run: a Python name with an underscore, or any
    name followed by "=" ("steps=25"), becomes the flag the user typed ("--steps 25"); a
    flag becomes its alias the user typed.
    """
    for word, flag in CLI_WORDS.items():
        message = re.sub(rf"(?<![\w-]){re.escape(word)}(?![\w])", flag, message)
        message = message.replace(f"{flag} ({flag})", flag)  # "resume=True (--resume)"
    for word, flag in (flags or {}).items():
        if word.startswith("--"):
            message = re.sub(rf"(?<![\w-]){re.escape(word)}(?![\w-])", flag, message)
            continue
        message = re.sub(rf"(?<![\w-]){re.escape(word)}=(?=\S)", flag + " ", message)
        if "_" in word:
            message = re.sub(rf"(?<![\w-]){re.escape(word)}(?![\w=])", flag, message)
    return message


def check_threads(threads) -> None:
    """--threads: None (the default) or an integer >= 1."""
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be an integer >= 1, got {threads!r}")


def seed(args: argparse.Namespace) -> int:
    """--seed, 0 when not given."""
    return 0 if args.seed is None else args.seed
