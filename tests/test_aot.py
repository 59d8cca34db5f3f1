"""Every Triton kernel compiles for real GPUs (sm_80, sm_90) on this CPU, without spills at
the paper's sizes (``fastvp.kernels.aot``; docs/physics.md section 6).

Compiles are cached for the session (and by Triton on disk); the awkward sizes (N, H, Nx
not powers of two) are swept in a slow test, their spills reported, not failed.
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("triton")  # the kernels' compiler: optional ([test], [cuda] extras)

from fastvp.kernels import (  # noqa: E402
    aot,
    aot_report,
    cic,
    deepset_leapfrog,
    deepset_train,
    fourier_leapfrog,
)

ARCHS = ("sm_80", "sm_90")
KEYS = {"kernel", "dtype", "arch", "sizes", "registers", "spill_stores", "spill_loads", "shared",
        "sass"}


def _have_tools() -> bool:
    try:
        return all(os.path.exists(aot.tool(t)) for t in ("ptxas", "cuobjdump"))
    except (FileNotFoundError, ImportError):
        return False


needs_tools = pytest.mark.skipif(not _have_tools(), reason="the Triton wheel's CUDA tools are missing")


def _kernel_functions(module) -> set[str]:
    kinds = ("JITFunction", "InterpretedFunction")  # the latter under TRITON_INTERPRET=1
    return {name for name, obj in vars(module).items()
            if type(obj).__name__ in kinds and name.endswith("_kernel")}


def test_every_kernel_of_every_family_has_a_spec():
    for module in aot.kernel_families():
        for dtype in aot.DTYPES:
            specs = module.aot_specs(dtype, aot.SIZES["paper"])
            assert {_name(s.fn) for s in specs} == _kernel_functions(module), module.__name__
    assert {m.__name__ for m in aot.kernel_families()} == {
        cic.__name__, deepset_leapfrog.__name__, deepset_train.__name__, fourier_leapfrog.__name__}


def _name(fn) -> str:
    return getattr(fn, "__name__", None) or fn.fn.__name__


@pytest.fixture(scope="module")
def paper_rows():
    return aot_report(archs=ARCHS, sizes=[aot.SIZES["paper"]])


@needs_tools
def test_every_kernel_compiles_for_sm80_and_sm90_in_both_dtypes(paper_rows):
    names = {s.name for d in aot.DTYPES for s in aot.all_specs(d, aot.SIZES["paper"])}
    got = {(r["kernel"], r["dtype"], r["arch"]) for r in paper_rows}
    assert got == {(k, d, a) for k in names for d in aot.DTYPES for a in ARCHS}
    for row in paper_rows:
        assert KEYS <= set(row)
        assert 0 < row["registers"] <= 255
        assert row["sass"]["total"] > 0


@needs_tools
def test_no_kernel_spills_at_the_paper_sizes(paper_rows):
    spills = [(r["kernel"], r["dtype"], r["arch"], r["spill_stores"], r["spill_loads"])
              for r in paper_rows if r["spill_stores"] or r["spill_loads"]]
    assert spills == []


@needs_tools
def test_fused_sampler_uses_the_sfu_sparingly_in_float32(paper_rows):
    """Per (particle, unit) element and gradient: two exponentials (softplus and sigma), a
    quarter of them on the FMA pipe, so 3/4 ex2 in each pass; one lg2 per four elements
    (product of four factors) and one reciprocal per four (one quotient for four units)."""
    row = next(r for r in paper_rows if r["kernel"] == "deepset_leapfrog"
               and r["dtype"] == "float32" and r["arch"] == "sm_90")
    hot = [loop["sass"] for loop in row["loops"] if loop["sass"].get("MUFU.EX2", 0)]
    assert len(hot) == 2                                # the softplus pass and the sigma pass
    pool, sigma = hot
    assert 3 * pool.get("MUFU.LG2", 0) == pool["MUFU.EX2"]
    assert 3 * sigma.get("MUFU.RCP", 0) == sigma["MUFU.EX2"]
    assert pool["MUFU"] + sigma["MUFU"] <= 4 * (pool["MUFU.EX2"] + sigma["MUFU.EX2"]) // 3 + 2


@needs_tools
def test_tensor_cores_take_the_h_by_h_products(paper_rows):
    for row in paper_rows:
        if row["kernel"] == "deepset_leapfrog" and row["arch"] == "sm_90":
            key = "HMMA" if row["dtype"] == "float32" else "DMMA"
            assert row["sass"][key] > 0, row["dtype"]


@pytest.mark.slow
@needs_tools
def test_awkward_sizes_compile_and_their_spills_are_reported():
    rows = aot_report(archs=ARCHS, sizes=[aot.SIZES["awkward"]])
    assert rows and all(r["registers"] > 0 for r in rows)
    print("\n" + aot.format_report(rows))


def test_ptxas_output_is_parsed():
    text = ("ptxas info    : Used 96 registers, used 1 barriers, 16 bytes cumulative stack size\n"
            "    16 bytes stack frame, 12 bytes spill stores, 20 bytes spill loads\n"
            "ptxas info    : Used 255 registers, 40 bytes smem")
    assert aot._parse_ptxas(text) == {"registers": 255, "spill_stores": 12, "spill_loads": 20,
                                      "static_shared": 40}


def test_sass_counts_and_innermost_loops_are_read_from_branches():
    rows = [(0x00, "MOV", " R1, c[0x0][0x28] "), (0x10, "MUFU.EX2", " R2, R3 "),
            (0x20, "FFMA", " R2, R2, R3, R4 "), (0x30, "BRA", " 0x10 "),
            (0x40, "MUFU.RCP", " R5, R5 "), (0x50, "BRA", " 0x50 "), (0x60, "NOP", "")]
    counts = aot.sass_counts(rows)
    assert counts["MUFU"] == 2 and counts["MUFU.EX2"] == 1 and counts["FFMA"] == 1
    assert counts["total"] == 6
    loops = aot.innermost_loops(rows)
    assert [(lp["start"], lp["end"]) for lp in loops] == [(0x10, 0x30)]
    assert loops[0]["sass"]["MUFU"] == 1


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="arch"):
        aot_report(archs=("sm_70",))
    with pytest.raises(ValueError, match="dtype"):
        aot.pointer("float16")
