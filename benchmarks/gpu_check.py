"""Steps of benchmarks/gpu_check.sh that need Python: the machine's description, the 2-epoch
training on a self-made dataset, and the summary of all measured figures beside the
predictions (gpu_results.json and gpu_results.md in the output folder).

    python -m benchmarks.gpu_check info OUT       -> OUT/info.json
    python -m benchmarks.gpu_check train OUT      -> OUT/training.json (dataset made in /tmp)
    python -m benchmarks.gpu_check summary OUT    -> OUT/gpu_results.json, OUT/gpu_results.md
"""

from __future__ import annotations

import json
import platform
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
PREDICTED = HERE / "predicted.json"
#: The paper's schedule, to extrapolate the measured epoch: 200 epochs of 20000 examples.
PAPER_EPOCHS, PAPER_TRAIN, BATCH = 200, 20000, 128


def info(out: Path) -> dict:
    import torch

    row = {"python": platform.python_version(), "torch": torch.__version__,
           "cuda": torch.version.cuda, "device": "none (CPU dry run)"}
    try:
        import triton

        row["triton"] = triton.__version__
    except ImportError:
        row["triton"] = None
    try:
        import cupy

        row["cupy"] = cupy.__version__
    except Exception:  # noqa: BLE001 - any CuPy failure means "not usable"
        row["cupy"] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        row.update(device=props.name, sms=props.multi_processor_count,
                   capability=f"sm_{props.major}{props.minor}",
                   memory_gb=round(props.total_memory / 2**30, 1))
    (out / "info.json").write_text(json.dumps(row, indent=1))
    return row


def train(out: Path, examples: int = 4096, epochs: int = 2) -> dict:
    """Generate a small paper-preset dataset on the device and train `epochs` epochs on it
    (dataset and run folder in a temporary folder: only training.json lands in `out`)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fastvp-gpu-check-") as tmp:
        result = _train(Path(tmp), examples, epochs)
    (out / "training.json").write_text(json.dumps(result, indent=1))
    return result


def _train(tmp: Path, examples: int, epochs: int) -> dict:
    import torch

    import fastvp

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":  # the dry run: a few steps only
        examples = 256
    data = tmp / "dataset"
    t0 = time.perf_counter()
    fastvp.generate_dataset(data, n_examples=examples, seed=0, device=device, progress=False)
    generate = time.perf_counter() - t0
    # the paper's K = 25 throughout, the hand-derived backward ("fast": the Triton gradient
    # on CUDA, not torch.compile), float32
    cfg = fastvp.TrainConfig(epochs=epochs, batch_size=BATCH, dtype=torch.float32, device=device,
                             steps=25, curriculum_steps=None, curriculum_fraction=0.0,
                             method="fast", val_examples=256, val_w1_examples=64)
    t0 = time.perf_counter()
    fastvp.train(data, cfg, out=tmp / "run", progress=False)
    seconds = time.perf_counter() - t0
    history = json.loads((tmp / "run" / "history.json").read_text())
    rows = history if isinstance(history, list) else history.get("epochs", history.get("history", []))
    train_examples = len(fastvp.load_dataset(data).split("train"))
    steps = -(-train_examples // BATCH)
    epoch_seconds = [r.get("seconds") for r in rows]
    last = epoch_seconds[-1] if epoch_seconds and epoch_seconds[-1] else seconds / epochs
    per_step = last / steps
    return {"device": device, "examples": examples, "train_examples": train_examples,
            "steps_per_epoch": steps, "generate_seconds": generate, "train_seconds": seconds,
            "epoch_seconds": epoch_seconds, "seconds_per_step_last_epoch": per_step,
            "paper_200_epochs_seconds_extrapolated":
                per_step * PAPER_EPOCHS * -(-PAPER_TRAIN // BATCH),
            "train_loss": [r.get("train_loss") for r in rows],
            "train_config": {k: str(v) for k, v in cfg.__dict__.items()}}


def _junit(path: Path) -> dict:
    if not path.exists():
        return {"ran": False}
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    keys = ("tests", "failures", "errors", "skipped", "time")
    out = {k: float(suite.get(k, 0)) if k == "time" else int(suite.get(k, 0)) for k in keys}
    out["failed"] = [f"{c.get('classname')}::{c.get('name')}" for c in suite.iter("testcase")
                     if c.find("failure") is not None or c.find("error") is not None]
    return {"ran": True, **out}


def _benchmarks(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for b in json.loads(path.read_text()).get("benchmarks", []):
        rows.append({"name": b["name"], "median_s": b["stats"]["median"], **b.get("extra_info", {})})
    return rows


def _load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def summary(out: Path) -> dict:
    stages = _load(out / "stages.json") or {}
    result = {"info": _load(out / "info.json"), "stages": stages,
              "cuda_tests": _junit(out / "cuda_tests.xml"),
              "benchmarks": _benchmarks(out / "benchmarks.json"),
              "training": _load(out / "training.json"),
              "predicted": (_load(PREDICTED) or {}).get("predictions")}
    (out / "gpu_results.json").write_text(json.dumps(result, indent=1))
    (out / "gpu_results.md").write_text(markdown(result))
    return result


def _predicted(pred: list | None, workload: str, dtype: str) -> str:
    for row in pred or []:
        if row["workload"].startswith(workload) and dtype in row["workload"] and "fast" in row["workload"]:
            return f"{row['seconds'] * 1e3:.2f} ms ({row['binding']})"
    for row in pred or []:
        if row["workload"].startswith(workload) and dtype in row["workload"]:
            return f"{row['seconds'] * 1e3:.2f} ms ({row['binding']})"
    return "-"


def markdown(r: dict) -> str:
    i = r.get("info") or {}
    lines = [f"## GPU check: {i.get('device')} (MEASURED)", "",
             f"torch {i.get('torch')}, Triton {i.get('triton')}, CuPy {i.get('cupy')}, "
             f"CUDA {i.get('cuda')}, Python {i.get('python')}.", "",
             "| stage | exit | seconds |", "| --- | --- | --- |"]
    lines += [f"| {k} | {v.get('rc')} | {v.get('seconds')} |" for k, v in r["stages"].items()]
    t = r["cuda_tests"]
    if t.get("ran"):
        lines += ["", f"CUDA tests: {t['tests']} run, {t['failures']} failed, {t['errors']} "
                      f"errors, {t['skipped']} skipped ({t['time']:.0f} s)."]
        lines += [f"- FAILED {name}" for name in t["failed"]]
    names = {"pic": "PIC dataset, 32768 examples", "sampling": "sampling 6384 examples, K = 25",
             "training_step": "training step, batch 128, K = 25"}
    lines += ["", "| workload | dtype | measured (median) | torch path, same run | predicted |",
              "| --- | --- | --- | --- | --- |"]
    for b in r["benchmarks"]:
        work, dtype = b.get("workload", b["name"]), b.get("dtype", "")
        ref = b.get("torch_path_seconds")
        lines.append(f"| {names.get(work, work)} | {dtype} | {b['median_s'] * 1e3:.2f} ms | "
                     f"{'-' if ref is None else f'{ref * 1e3:.1f} ms'} | "
                     f"{_predicted(r['predicted'], names.get(work, work).split(',')[0], dtype)} |")
    tr = r.get("training")
    if tr:
        lines += ["", f"Training, float32, {tr['examples']} examples generated in "
                      f"{tr['generate_seconds']:.1f} s: epochs of {tr['steps_per_epoch']} steps took "
                      f"{', '.join(f'{s:.1f}' for s in tr['epoch_seconds'] if s)} s; "
                      f"{tr['seconds_per_step_last_epoch'] * 1e3:.1f} ms a step -> the paper's 200 "
                      f"epochs x 157 steps in about {tr['paper_200_epochs_seconds_extrapolated']:.0f} s "
                      "(extrapolated, validation excluded)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    command, folder = sys.argv[1], Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    print(json.dumps({"info": info, "train": train, "summary": summary}[command](folder),
                     indent=1, default=str)[:4000])
