"""Benchmark tables of RESULTS.md, generated from pytest-benchmark JSON.

    pytest benchmarks/ --benchmark-only --benchmark-json=benchmarks/results/cpu.json
    python benchmarks/results.py benchmarks/results/cpu.json --label cpu [--write benchmarks/RESULTS.md]

Each benchmark puts its figures in ``extra_info`` with the table it belongs to
(``conftest.record``). This script groups them by table and prints markdown; with
``--write`` it replaces the text between ``<!-- generated:LABEL:begin -->`` and
``<!-- generated:LABEL:end -->`` in the results file (appending the block if absent), so
the prose and the predicted figures beside the tables stay hand-written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: table -> (title, [(column header, extra_info key, format)]).
TABLES = {
    "pic": ("PIC, the 32768-example paper dataset (25 steps, 6 snapshots kept in memory)", [
        ("device", "device", "{}"), ("dtype", "dtype", "{}"), ("median", "seconds", "{:.3f} s"),
        ("per-example NumPy loop, same run (scaled)", "numpy_loop_seconds_scaled", "{:.1f} s"),
        ("speed-up vs that loop", "speedup_vs_numpy_loop", "{:.0f}x"),
        ("vs the authors' 12.5 ms / example", "speedup_vs_official_12_5ms", "{:.0f}x")]),
    "k-step": ("K-step speedups: 6384 examples, float32, K against K = 25 in the same test", [
        ("K", "steps", "{}"), ("gradients", "gradients", "{}"), ("K = 25", "k25_seconds", "{:.2f} s"),
        ("K", "seconds", "{:.2f} s"), ("speed-up", "speedup_vs_k25", "{:.2f}x"),
        ("ideal (merged kicks)", "ideal_merged", "{:.2f}x"), ("path", "path", "{}")]),
    "surrogate-vs-pic": ("Surrogate vs PIC on the same 6384 examples (float32, to T)", [
        ("K", "steps", "{}"), ("PIC", "pic_seconds", "{:.2f} s"),
        ("surrogate", "surrogate_seconds", "{:.2f} s"),
        ("surrogate / PIC", "surrogate_over_pic", "{:.1f}x")]),
    "closed-form-vs-autograd": ("Sampling, batch 128, K = 25: closed form vs the authors' double "
                                "autograd (float64), same test", [
        ("path", "path", "{}"), ("dtype", "dtype", "{}"), ("closed form", "seconds", "{:.3f} s"),
        ("double autograd float64", "autograd_float64_seconds", "{:.2f} s"),
        ("speed-up", "speedup_vs_autograd_float64", "{:.1f}x")]),
    "training-step": ("One training step, batch 128, K = 25: fast and compiled vs double autograd", [
        ("dtype", "dtype", "{}"), ("threads", "threads", "{}"),
        ("double autograd", "double_autograd_seconds", "{:.2f} s"), ("fast", "fast_seconds", "{:.2f} s"),
        ("compiled", "compiled_seconds", "{:.2f} s"), ("fast speed-up", "speedup_fast", "{:.1f}x"),
        ("compiled speed-up", "speedup_compiled", "{:.1f}x"),
        ("CPU-time speed-up (fast)", "cpu_speedup_fast", "{:.1f}x")]),
}


def _cell(info: dict, key: str, fmt: str) -> str:
    value = info.get(key)
    if value is None:
        return ""
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def _generic(rows: list[dict]) -> tuple[str, list]:
    keys = sorted({k for r in rows for k in r if k not in ("table", "machine", "load_average")})
    return "", [(k, k, "{:.4g}" if all(isinstance(r.get(k), float) for r in rows) else "{}")
                for k in keys]


def tables(benchmarks: list[dict]) -> str:
    """Markdown of every table found in the benchmarks' extra_info."""
    groups: dict[str, list[dict]] = {}
    for b in benchmarks:
        info = b.get("extra_info", {})
        if "table" in info:
            groups.setdefault(info["table"], []).append(info)
    out = []
    for name, rows in groups.items():
        title, cols = TABLES.get(name) or _generic(rows)
        machines = sorted({r.get("machine", "?") for r in rows})
        loads = [r["load_average"] for r in rows if "load_average" in r]
        out += [f"#### {title or name}", "",
                f"Machine: {', '.join(machines)}; load average during the run "
                f"{min(loads):.1f}-{max(loads):.1f}." if loads else f"Machine: {', '.join(machines)}.",
                "", "| " + " | ".join(c[0] for c in cols) + " |",
                "| " + " | ".join("---" for _ in cols) + " |"]
        out += ["| " + " | ".join(_cell(r, key, fmt) for _, key, fmt in cols) + " |" for r in rows]
        out.append("")
    return "\n".join(out)


def replace_block(text: str, label: str, block: str) -> str:
    """`text` with the generated block `label` set to `block` (appended if absent)."""
    begin, end = f"<!-- generated:{label}:begin -->", f"<!-- generated:{label}:end -->"
    new = f"{begin}\n{block.rstrip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + new + rest.split(end, 1)[1]
    return text.rstrip() + "\n\n" + new + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("json", nargs="+", help="pytest-benchmark JSON file(s)")
    p.add_argument("--label", required=True, help="name of the generated block (e.g. cpu, h100)")
    p.add_argument("--write", default=None, help="results file to update (default: print)")
    args = p.parse_args(argv)
    benchmarks = []
    for path in args.json:
        data = json.loads(Path(path).read_text())
        benchmarks += data.get("benchmarks", [])
        date = data.get("datetime", "")
    block = f"Generated by `benchmarks/results.py` from {', '.join(args.json)} ({date}).\n\n"
    block += tables(benchmarks)
    if args.write is None:
        print(block)
        return 0
    target = Path(args.write)
    target.write_text(replace_block(target.read_text() if target.exists() else "", args.label, block))
    print(f"updated the {args.label!r} block of {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
