"""Issue 24: check-physics at a problem's own parameters (a scan: one run per value)
against an independent Landau dispersion solver, and fits that say when they fail."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import fsolve
from scipy.special import wofz

import fastvp
from fastvp.cli import main
from fastvp.problems import fit_rate
from fastvp.problems.fit import FitWarning

pytestmark = pytest.mark.usefixtures("one_thread")


def landau_root(k: float, vth: float = 1.0) -> complex:
    """The least damped root of 1 + (1 + zeta Z(zeta)) / (k vth)^2 = 0, zeta = omega /
    (sqrt 2 k vth), Z(zeta) = i sqrt(pi) w(zeta), from the Bohm-Gross guess."""
    def eps(x):
        zeta = (x[0] + 1j * x[1]) / (np.sqrt(2) * k * vth)
        value = 1 + (1 + zeta * 1j * np.sqrt(np.pi) * wofz(zeta)) / (k * vth) ** 2
        return [value.real, value.imag]

    re, im = fsolve(eps, [np.sqrt(1 + 3 * (k * vth) ** 2), -0.1], xtol=1e-12)
    return complex(re, im)


def test_independent_solver_gives_the_textbook_root():
    root = landau_root(0.5)
    assert root.real == pytest.approx(1.4157, abs=1e-4) and root.imag == pytest.approx(-0.1534, abs=1e-4)


def _lines(capsys) -> list[str]:
    return [s for s in capsys.readouterr().out.splitlines() if s.startswith("landau")]


def _rate(line: str, q: str) -> float:
    return float(line.split(f"{q} ", 1)[1].split(" ", 1)[0])


@pytest.mark.parametrize("ks", [[0.4], [0.4, 0.5, 0.6]], ids=["one_k", "scan_of_k"])
def test_check_physics_landau_k_matches_the_dispersion_relation(ks, tmp_path, capsys):
    out = tmp_path / "phys"
    argv = ["check-physics", "--problems", "landau", "--k", *map(str, ks), "--particles",
            "262144", "--quiet-start", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    lines = _lines(capsys)
    assert len(lines) == len(ks)
    for k, text in zip(ks, lines):
        root = landau_root(k)
        assert abs(_rate(text, "gamma") / root.imag - 1) < 0.02, text
        assert abs(_rate(text, "omega") / root.real - 1) < 0.01, text
        assert text.endswith("passed")
    report = (out / "report.md").read_text()
    assert all(f"| landau k={k:g}" in report for k in ks)
    if len(ks) > 1:
        assert (out / "landau_scan_k.png").stat().st_size > 1000 and "scan of k" in report


def test_check_physics_refuses_parameters_without_one_problem(tmp_path, capsys):
    assert main(["check-physics", "--k", "0.4", "--out", str(tmp_path / "x")]) == 2
    assert "--k need one problem" in capsys.readouterr().err
    assert main(["check-physics", "--problems", "landau", "--v0", "1", "--out",
                 str(tmp_path / "x")]) == 2
    assert "--v0 is not a parameter of landau" in capsys.readouterr().err


def test_check_physics_says_why_a_point_cannot_be_fitted(tmp_path, capsys):
    # k = 0.2: gamma ~ -5e-5 would need a run far over the planned limit
    assert main(["check-physics", "--problems", "landau", "--k", "0.2", "--particles", "4096",
                 "--quiet", "--out", str(tmp_path)]) == 1
    assert "cannot be fitted" in capsys.readouterr().out


def _landau(quiet: bool):
    prob = fastvp.problems.landau(k=0.5, alpha=0.01, particles=2**16)
    return fastvp.simulate(prob.initial_conditions(quiet=quiet), prob.config, diagnostics=True)


def test_noisy_start_fit_warns_and_is_not_reliable():
    traj = _landau(quiet=False)
    with pytest.warns(FitWarning, match="noise floor"):
        fit = fit_rate(traj)
    assert fit.reliable is False and "noise floor" in fit.reason
    gamma, omega = fit  # still unpacks as a Rate
    assert gamma == fit.gamma and fit.noise_floor > 0


def test_quiet_start_fit_is_reliable_without_a_warning():
    traj = _landau(quiet=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        fit = fit_rate(traj)
    assert fit.reliable is True and fit.reason == "" and fit.r2 > 0.99 and fit.points >= 8
