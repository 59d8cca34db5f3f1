"""benchmarks/results.py: RESULTS.md tables generated from pytest-benchmark JSON."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_results", ROOT / "benchmarks" / "results.py")
results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(results)


def _json(tmp_path: Path) -> Path:
    data = {"datetime": "2026-11-26", "benchmarks": [
        {"extra_info": {"table": "k-step", "machine": "cpu", "steps": 5, "gradients": 6,
                        "k25_seconds": 2.6, "seconds": 0.6, "speedup_vs_k25": 4.33,
                        "ideal_merged": 4.33, "path": "torch", "load_average": 0.2}},
        {"extra_info": {"table": "new-table", "machine": "cpu", "x": 1.5, "load_average": 0.4}},
        {"extra_info": {}},  # a benchmark without a table is left out
    ]}
    path = tmp_path / "b.json"
    path.write_text(json.dumps(data))
    return path


def test_tables_hold_the_recorded_figures(tmp_path):
    text = results.tables(json.loads(_json(tmp_path).read_text())["benchmarks"])
    assert "| 5 | 6 | 2.60 s | 0.60 s | 4.33x | 4.33x | torch |" in text
    assert "#### new-table" in text and "| 1.5 |" in text
    assert "load average during the run 0.2-0.2" in text


def test_the_generated_block_is_replaced_in_place(tmp_path):
    target = tmp_path / "RESULTS.md"
    target.write_text("# Results\n\nprose before\n")
    assert results.main([str(_json(tmp_path)), "--label", "cpu", "--write", str(target)]) == 0
    first = target.read_text()
    assert first.startswith("# Results\n\nprose before\n") and "<!-- generated:cpu:end -->" in first
    target.write_text(first + "\nprose after\n")
    results.main([str(_json(tmp_path)), "--label", "cpu", "--write", str(target)])
    second = target.read_text()
    assert second.count("<!-- generated:cpu:begin -->") == 1 and second.endswith("prose after\n")
