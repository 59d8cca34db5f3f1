"""docs/landau.md runs as written: its ```python blocks and its ```bash blocks' `fastvp`
commands, in order, in one empty folder (the command line through ``fastvp.cli.main``, at one
thread). About 15-30 s on a loaded 2-core CPU, most of it the evaluation of landau-1d."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from fastvp.cli import main

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "landau.md"


def blocks(text: str) -> list[tuple[str, str]]:
    """The fenced blocks of a Markdown page: [(language, code)], in order."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)]


def steps(text: str) -> list[tuple[str, str]]:
    """What the page asks to run: ("python", a block) and ("fastvp", one command line)."""
    out = []
    for lang, code in blocks(text):
        if lang == "python":
            out.append(("python", code))
        elif lang == "bash":
            out += [("fastvp", line.strip()) for line in code.splitlines()
                    if line.strip().startswith("fastvp ")]
    return out


def test_the_tutorial_has_every_stage():
    run = steps(TUTORIAL.read_text())
    commands = [code.split()[1] for kind, code in run if kind == "fastvp"]
    assert commands == ["simulate", "check-physics", "simulate", "train", "evaluate"]
    python = "\n".join(code for kind, code in run if kind == "python")
    assert "fit_rate(ds.diagnostics, example=0)" in python and "plot_mode_amplitude" in python


def test_the_tutorial_runs(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for kind, code in steps(TUTORIAL.read_text()):
        if kind == "python":
            exec(compile(code, str(TUTORIAL), "exec"), namespace)
        else:
            argv = shlex.split(code)[1:] + ["--quiet", "--threads", "1"]
            assert main(argv) == 0, f"{code!r} failed:\n{capsys.readouterr().out}"
    assert (tmp_path / "landau_mode.png").stat().st_size > 0
    assert (tmp_path / "scan" / "report.md").exists()
    assert (tmp_path / "runs" / "landau" / "model.safetensors").exists()
    assert (tmp_path / "report" / "report.md").exists()
