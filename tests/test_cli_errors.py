"""User errors of the command line: one line on stderr naming the option, the value and
the true cause, in CLI words, exit status 2, no traceback, before any work starts, and
nothing written."""

from __future__ import annotations

import os
import shutil

import pytest

import fastvp
from fastvp.cli import main
from fastvp.surrogate.model import Surrogate


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def refused(capsys, argv, *words, root=None):
    """main(argv) returns 2 with one line on stderr holding every word; nothing new under root."""
    before = _tree(root) if root is not None else None
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fastvp "), err
    assert "Traceback" not in err
    for w in words:
        assert w in err, f"{w!r} not in {err!r}"
    if root is not None:
        assert _tree(root) == before
    return err


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
@pytest.mark.parametrize("command", [
    ["simulate", "--examples", "4"], ["train", "--data", "nowhere"], ["demo"],
    ["evaluate", "--model", "paper-1d", "--data", "nowhere"]])
def test_an_out_folder_that_cannot_be_created_is_named_with_its_cause(capsys, here, command):
    err = refused(capsys, [*command, "--out", "/proc/nope", "--quiet"], "--out '/proc/nope'",
                  "cannot be created", "'/proc' refuses new entries", root=here)
    assert "GB" not in err  # not a disk-space problem


def test_an_out_below_a_file_says_the_parent_is_a_file(capsys, here):
    (here / "s.npz").write_text("x")
    refused(capsys, ["simulate", "--out", "s.npz/sub", "--examples", "4", "--quiet"],
            "--out 's.npz/sub'", "s.npz' is a file, not a folder", root=here)
    refused(capsys, ["sample", "--t", "1", "--out", "s.npz/x.npz"], "is a file, not a folder",
            root=here)


def test_a_dataset_larger_than_the_disk_gives_the_real_sizes(capsys, here):
    free = shutil.disk_usage(here).free
    n = int(free / (13 * 256 * 8)) + 10_000_000  # more than the filesystem holds
    refused(capsys, ["simulate", "--out", "big", "--examples", str(n), "--quiet"],
            "--out 'big'", f"({n} examples x 19 arrays) needs", "are free on the filesystem of",
            root=here)


def test_sample_refuses_a_bad_out_before_reading_the_model(capsys, here, monkeypatch):
    def fail(*a, **k):
        raise AssertionError("the model was read before --out was checked")

    monkeypatch.setattr(Surrogate, "load", fail)
    refused(capsys, ["sample", "--t", "0.5", "--examples", "4", "--out", "s_noext"],
            "--out must name a .npz file, got 's_noext'", root=here)
    refused(capsys, ["sample", "--t", "0.5", "--examples", "0"], "--examples", "got 0")


def test_errors_speak_cli_words(capsys, here):
    refused(capsys, ["sample", "--t", "2.0"], "--extrapolate", "2.0")
    refused(capsys, ["simulate", "--out", "d", "--examples", "0", "--quiet"], "--examples", "got 0")
    refused(capsys, ["simulate", "--out", "d", "--sigma-q-range", "2", "1", "--quiet"],
            "--sigma-q-range must be (low, high)")
    refused(capsys, ["train", "--data", "nowhere", "--out", "run"], "'nowhere' does not exist")
    refused(capsys, ["sample", "--t", "1", "--model", "no-such-model"], "--model 'no-such-model'",
            "bundled models")
    refused(capsys, ["train", "--data", "nowhere", "--out", "run", "--threads", "0"], "--threads")


def test_argparse_errors_are_one_line(capsys, here):
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--out", "x", "--scheme", "nope"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--scheme" in err and "'nope'" in err and "--help" in err


def test_a_file_that_is_not_a_model_is_one_line(capsys, here):
    (here / "junk.pt").write_bytes(b"PK\x03\x04 not really a zip")
    refused(capsys, ["sample", "--t", "1", "--model", "junk.pt"], "junk.pt", "not a torch state_dict")
    (here / "junk.safetensors").write_bytes(b"\x00" * 64)
    refused(capsys, ["sample", "--t", "1", "--model", "junk.safetensors"], "not a fastvp model")
    (here / "text.pt").write_text("just some text, long enough to be read as a header\n" * 4)
    err = refused(capsys, ["sample", "--t", "1", "--model", "text.pt"], "'text.pt' is not a fastvp "
                  "model file: neither safetensors nor a torch checkpoint")
    assert "header" not in err.lower()
    with pytest.raises(ValueError, match="neither safetensors nor a torch checkpoint"):
        Surrogate.load(here / "text.pt")


def test_an_empty_test_split_is_named(capsys, here):
    fastvp.generate_dataset(here / "d3", n_examples=3, config=fastvp.PICConfig(n_particles=8),
                            progress=False)
    refused(capsys, ["evaluate", "--model", "paper-1d", "--data", "d3", "--out", "r", "--quiet",
                     "--allow-mismatch"], "empty test split")


def test_debug_shows_the_traceback(here):
    with pytest.raises(ValueError, match="must name a .npz file"):
        main(["sample", "--t", "1", "--out", "s_noext", "--debug"])


def test_python_words_become_flags_once():
    from fastvp.cli._common import cli_message

    assert cli_message("pass resume=True (--resume) to continue it or overwrite=True "
                       "(--overwrite)") == "pass --resume to continue it or --overwrite"
    assert cli_message("n_examples must be >= 1; pass allow_mismatch=True") == \
        "--examples must be >= 1; pass --allow-mismatch"


def test_an_existing_out_folder_that_refuses_writes_is_named(capsys, here, monkeypatch):
    (here / "ro").mkdir()
    real = os.access
    monkeypatch.setattr("fastvp.files.os.access",
                        lambda p, mode: False if str(p).endswith("ro") else real(p, mode))
    refused(capsys, ["demo", "--out", "ro", "--quiet"], "--out 'ro' cannot be written",
            "read-only filesystem", root=here)


@pytest.mark.parametrize("argv, words", [
    (["simulate", "--out", "d", "--particles", "0"], ["--particles must be", "got 0"]),
    (["simulate", "--out", "d", "--n-particles", "0"], ["--n-particles must be", "got 0"]),
    (["simulate", "--out", "d", "--steps", "25", "--save-every", "7"],
     ["--save-every must divide", "--save-every 7", "--steps 25"]),
    (["simulate", "--out", "d", "--problem", "landau", "--steps", "25", "--save-every", "7"],
     ["--save-every must divide", "--save-every 7"]),
    (["train", "--data", "nowhere", "--out", "run", "--batch-size", "0"],
     ["--batch-size must be", "got 0"]),
])
def test_errors_name_the_flag_as_typed(capsys, here, argv, words):
    err = refused(capsys, [*argv, "--quiet"], *words, root=here)
    for python in ("n_particles", "save_every", "batch_size"):
        assert python not in err


def test_typed_flags_rename_python_words_and_aliases():
    from fastvp.cli import build_parser
    from fastvp.cli._common import cli_message, typed_flags

    words = typed_flags(build_parser().commands["simulate"], ["--particles", "0"])
    assert cli_message("n_particles must be > 0, got 0", words) == "--particles must be > 0, got 0"
    words = typed_flags(build_parser().commands["simulate"], ["--n-particles=0"])
    assert cli_message("--particles must be >= 1; n_particles=0", words) == \
        "--n-particles must be >= 1; --n-particles 0"
    assert cli_message("the steps of steps=3", words) == "the steps of --steps 3"
