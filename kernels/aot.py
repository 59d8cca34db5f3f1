"""Ahead-of-time compile of every Triton kernel of fastvp for real GPUs, on any machine.

``triton.compile(ASTSource(fn, signature, constexprs, attrs), target=GPUTarget("cuda", cc,
32))`` lowers a kernel to PTX and a cubin without a GPU; the ptxas, cuobjdump and nvdisasm
shipped in the Triton wheel (triton/backends/nvidia/bin/) then tell what the GPU would run:

    registers, spill_stores, spill_loads (bytes)   from ``ptxas -v`` on the PTX
    shared (bytes)                                 Triton's dynamic shared memory + ptxas' static
    sass {class: count}                            static SASS instruction counts (cuobjdump)
    loops [{start, end, trips?, sass}]             the innermost loops of the SASS (backward
                                                   branches), in address order, with their counts

Each kernel family declares what to compile in its own ``aot_specs(dtype, sizes)`` (the
same block sizes and warps as its launcher), so this module knows no kernel by heart.
Written for Triton 3.6 and 3.9 (the GPU machines' and this machine's), defensively: the
attrs format, the asm keys and the PTX version (sm_90 PTX 9.x needs ``ptxas-blackwell``)
differ between versions.

Example::

    from fastvp.kernels import aot_report
    rows = aot_report(archs=("sm_90",))
    [(r["kernel"], r["dtype"], r["registers"], r["spill_stores"]) for r in rows]
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter

from . import cic, deepset_leapfrog, deepset_train, fourier_leapfrog
from .aot_spec import DTYPES, AotSpec, pointer, signature_of  # noqa: F401

#: Sizes compiled by default: the paper's (N particles, H hidden units, Nx cells), and
#: awkward ones (N, H, Nx not powers of two) whose spills are reported, not failed.
SIZES = {"paper": {"N": 256, "H": 256, "Nx": 128}, "awkward": {"N": 200, "H": 100, "Nx": 100}}
ARCHS = {"sm_80": 80, "sm_90": 90}
#: SASS opcode classes reported in ``sass`` (opcode before its first dot), plus MUFU by function.
SASS_CLASSES = ("MUFU", "FFMA", "FMUL", "FADD", "DFMA", "DMUL", "DADD", "LDG", "STG", "LDS",
                "STS", "BAR", "SHFL", "HMMA", "DMMA", "HGMMA", "LDL", "STL", "ATOM", "RED",
                "FSETP", "FSEL", "FMNMX")


# ---------------------------------------------------------------------------- tools


def _bin_dir() -> str:
    import triton.backends.nvidia as nv

    return os.path.join(os.path.dirname(nv.__file__), "bin")


def tool(name: str) -> str:
    """Path of one of the wheel's CUDA tools (ptxas, ptxas-blackwell, cuobjdump, nvdisasm)."""
    path = os.path.join(_bin_dir(), name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{name} not found in the Triton wheel ({_bin_dir()})")
    return path


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, check=False)


def _ptxas_candidates() -> list[str]:
    names = [os.environ.get("TRITON_PTXAS_PATH", "")]
    names += [os.path.join(_bin_dir(), n) for n in ("ptxas", "ptxas-blackwell")]
    return [n for n in names if n and os.path.exists(n)]


# ---------------------------------------------------------------------------- compile


def _target(arch: str):
    from triton.backends.compiler import GPUTarget

    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {tuple(ARCHS)}, got {arch!r}")
    return GPUTarget("cuda", ARCHS[arch], 32)


def _attrs(spec: AotSpec) -> dict:
    names = spec.fn.arg_names
    attrs = {}
    for i, name in enumerate(names):
        typ = spec.signature[name]
        if typ.startswith("*") or (typ == "i32" and spec.ints.get(name, 1) % 16 == 0):
            attrs[(i,)] = [["tt.divisibility", 16]]
    return attrs


def compile_spec(spec: AotSpec, arch: str):
    """triton.compile of one spec for `arch`: the CompiledKernel (asm holds ptx and cubin)."""
    import triton
    from triton.compiler import ASTSource

    target = _target(arch)
    options = {"num_warps": spec.num_warps}
    try:
        src = ASTSource(fn=spec.fn, signature=spec.signature, constexprs=spec.constexprs,
                        attrs=_attrs(spec))
    except (TypeError, AssertionError):  # other attrs formats: compile without the hints
        src = ASTSource(fn=spec.fn, signature=spec.signature, constexprs=spec.constexprs)
    return triton.compile(src, target=target, options=options)


def _asm(kernel, key: str):
    asm = kernel.asm
    for k in (key, key.upper()):
        if k in asm:
            return asm[k]
    raise KeyError(f"the compiled kernel has no {key!r} (asm keys: {sorted(asm)})")


def ptxas_usage(ptx: str, arch: str) -> dict:
    """registers, spill_stores, spill_loads, static shared bytes of PTX by ``ptxas -v``."""
    gpu = "sm_90a" if arch == "sm_90" else arch
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, "k.ptx"), os.path.join(tmp, "k.cubin")
        with open(src, "w") as f:
            f.write(ptx)
        for exe in _ptxas_candidates():  # the first that accepts this PTX version
            res = _run([exe, "-v", f"--gpu-name={gpu}", src, "-o", out])
            if res.returncode == 0:
                return _parse_ptxas(res.stdout + res.stderr)
            errors.append(f"{os.path.basename(exe)}: {res.stderr.strip()[:300]}")
    raise RuntimeError(f"no ptxas of the Triton wheel assembles this PTX for {gpu}: {errors}")


def _parse_ptxas(text: str) -> dict:
    def grab(pattern: str) -> int:
        found = re.findall(pattern, text)
        return max((int(x) for x in found), default=0)

    return {"registers": grab(r"Used (\d+) registers"),
            "spill_stores": grab(r"(\d+) bytes spill stores"),
            "spill_loads": grab(r"(\d+) bytes spill loads"),
            "static_shared": grab(r"(\d+) bytes smem")}


_SASS_LINE = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_.]*)(.*?);")


def sass_instructions(cubin: bytes) -> list[tuple[int, str, str]]:
    """(address, opcode, operands) of every SASS instruction of a cubin (cuobjdump -sass)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        res = _run([tool("cuobjdump"), "-sass", path])
    if res.returncode != 0:
        raise RuntimeError(f"cuobjdump -sass failed: {res.stderr.strip()[:300]}")
    out = []
    for line in res.stdout.splitlines():
        m = _SASS_LINE.match(line)
        if m:
            out.append((int(m.group(1), 16), m.group(2), m.group(3)))
    return out


def sass_counts(instructions) -> dict:
    """Counts by class (SASS_CLASSES, MUFU.<function>, 'total') of (address, opcode, _) rows."""
    base = Counter(op.split(".")[0] for _, op, _ in instructions)
    counts = {c: base.get(c, 0) for c in SASS_CLASSES}
    for _, op, _ in instructions:
        if op.startswith("MUFU."):
            counts[op] = counts.get(op, 0) + 1
    counts["total"] = sum(1 for _, op, _ in instructions if op != "NOP")
    return counts


def _loop_spans(instructions) -> list[tuple[int, int]]:
    """(target, branch) of every backward BRA, i.e. every loop [start, end], sorted."""
    spans = set()
    for addr, op, rest in instructions:
        m = re.search(r"0x([0-9a-f]+)", rest) if op.startswith("BRA") else None
        if m and int(m.group(1), 16) < addr:  # not the BRA-to-itself after EXIT
            spans.add((int(m.group(1), 16), addr))
    return sorted(spans)


def innermost_loops(instructions) -> list[dict]:
    """SASS of the innermost loops: a backward BRA closes [target, branch]; no nested loop inside."""
    spans = _loop_spans(instructions)
    inner = [s for s in spans if not any(o != s and s[0] <= o[0] and o[1] <= s[1] for o in spans)]
    return [{"start": lo, "end": hi,
             "sass": sass_counts([i for i in instructions if lo <= i[0] <= hi])} for lo, hi in inner]


def loop_tree(instructions) -> list[dict]:
    """Every loop in address order: start, end, depth (0 outermost) and sass, the counts of
    its own body (nested loops left out), so that dynamic counts are sums of self counts
    times the product of the trip counts of the enclosing loops."""
    spans = _loop_spans(instructions)
    out = []
    for lo, hi in spans:
        inside = [o for o in spans if o != (lo, hi) and lo <= o[0] and o[1] <= hi]
        depth = sum(1 for o in spans if o != (lo, hi) and o[0] <= lo and hi <= o[1])
        body = [i for i in instructions if lo <= i[0] <= hi
                and not any(a <= i[0] <= b for a, b in inside)]
        out.append({"start": lo, "end": hi, "depth": depth, "sass": sass_counts(body)})
    return out


# ---------------------------------------------------------------------------- report


def kernel_families() -> list:
    """The kernel modules of fastvp, each with its ``aot_specs(dtype, sizes)``."""

    return [cic, deepset_leapfrog, deepset_train, fourier_leapfrog]


def all_specs(dtype: str, sizes: dict) -> list[AotSpec]:
    """Every kernel of every family at `sizes` ({"N", "H", "Nx"}) in `dtype`."""
    return [spec for family in kernel_families() for spec in family.aot_specs(dtype, sizes)]


@functools.cache
def _analyse(name: str, dtype: str, arch: str, sizes_key: tuple) -> dict:
    sizes = dict(sizes_key)
    specs = {s.name: s for s in all_specs(dtype, sizes)}
    spec = specs[name]
    kernel = compile_spec(spec, arch)
    usage = ptxas_usage(_asm(kernel, "ptx"), arch)
    instructions = sass_instructions(_asm(kernel, "cubin"))
    loops = innermost_loops(instructions)
    for loop, trips in zip(loops, spec.trips):
        loop["trips"] = trips
    return {
        "kernel": name, "dtype": dtype, "arch": arch, "sizes": sizes,
        "registers": usage["registers"], "spill_stores": usage["spill_stores"],
        "spill_loads": usage["spill_loads"],
        "shared": int(getattr(kernel.metadata, "shared", 0) or 0) + usage["static_shared"],
        "sass": sass_counts(instructions), "loops": loops, "num_warps": spec.num_warps,
        "constexprs": {k: v for k, v in spec.constexprs.items()},
    }


def analyse(spec_name: str, dtype: str, arch: str, sizes: dict) -> dict:
    """The report row of one kernel (cached for the session: a compile takes seconds)."""
    return _analyse(spec_name, dtype, arch, tuple(sorted(sizes.items())))


def aot_report(archs=("sm_80", "sm_90"), dtypes=DTYPES, sizes=None, kernels=None) -> list[dict]:
    """Compile every kernel for `archs` and read its resources: one dict per (kernel, dtype,
    arch, sizes) with keys kernel, dtype, arch, sizes, registers, spill_stores, spill_loads,
    shared (bytes), sass (static instruction counts by class) and loops (innermost loops).

    sizes: a list of {"N", "H", "Nx"} dicts (default: ``SIZES``, the paper's and awkward
    ones); kernels: names to keep (default all). Needs no GPU. Under the Triton
    interpreter (TRITON_INTERPRET=1, where kernels are not compilable objects) the report
    is made in a subprocess without it.
    """
    if isinstance(archs, str):
        archs = (archs,)
    for arch in archs:
        _target(arch)
    size_sets = list(SIZES.values()) if sizes is None else list(sizes)
    args = (tuple(archs), tuple(dtypes), json.dumps(size_sets, sort_keys=True),
            None if kernels is None else tuple(kernels))
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        return [dict(r) for r in _report_in_subprocess(*args)]
    rows = []
    for size in size_sets:
        for dtype in dtypes:
            for spec in all_specs(dtype, size):
                if kernels is not None and spec.name not in kernels:
                    continue
                rows.extend(analyse(spec.name, dtype, arch, size) for arch in archs)
    return rows


@functools.cache
def _report_in_subprocess(archs, dtypes, sizes_json, kernels) -> tuple:
    request = json.dumps({"archs": archs, "dtypes": dtypes, "sizes": json.loads(sizes_json),
                          "kernels": kernels})
    env = dict(os.environ, TRITON_INTERPRET="0")
    res = subprocess.run([sys.executable, "-m", "fastvp.kernels.aot", "--json", request],
                         capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"the AOT report subprocess failed: {res.stderr.strip()[-2000:]}")
    return tuple(json.loads(res.stdout.strip().splitlines()[-1]))


def format_report(rows: list[dict]) -> str:
    """The rows as a markdown table (kernel, dtype, arch, sizes, registers, spills, MUFU...)."""
    head = ("| kernel | dtype | arch | N, H, Nx | regs | spill st/ld B | shared B | MUFU | "
            "FFMA/FMUL/FADD | DFMA | SASS total |")
    lines = [head, "|" + " --- |" * 11]
    for r in rows:
        s, z = r["sass"], r["sizes"]
        lines.append(
            f"| {r['kernel']} | {r['dtype']} | {r['arch']} | {z['N']}, {z['H']}, {z['Nx']} | "
            f"{r['registers']} | {r['spill_stores']} / {r['spill_loads']} | {r['shared']} | "
            f"{s['MUFU']} | {s['FFMA']}/{s['FMUL']}/{s['FADD']} | {s['DFMA']} | {s['total']} |")
    return "\n".join(lines)


def _main(argv: list[str]) -> None:
    """python -m fastvp.kernels.aot [sm_80 sm_90] | --json '{"archs": [...], ...}'"""
    if argv[:1] == ["--json"]:
        req = json.loads(argv[1])
        rows = aot_report(archs=tuple(req["archs"]), dtypes=tuple(req["dtypes"]),
                          sizes=req["sizes"], kernels=req["kernels"])
        print(json.dumps(rows))
    else:
        print(format_report(aot_report(archs=tuple(argv) or ("sm_80", "sm_90"))))


if __name__ == "__main__":
    _main(sys.argv[1:])
