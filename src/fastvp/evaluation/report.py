"""The markdown report of ``fastvp.evaluation.evaluate_models``'s results, one section per function."""

from __future__ import annotations


def _pm(e: dict, digits: int = 4) -> str:
    return f"{e['mean']:.{digits}f} ± {e['sem']:.{digits}f}"


def describe_training(training: dict) -> str:
    """What a model's "training" record says of how it was made, in one sentence."""
    if not training:
        return "no training record (how it was made is not known)"
    objective = training.get("objective", "unknown objective")
    times = training.get("supervised_times")
    init = training.get("init", "unknown")
    seen = f"supervised at t = {', '.join(f'{t:g}' for t in times)}" if times else "supervision unknown"
    a = "a learned" if training.get("a_learned", objective == "likelihood") else "a fixed at 1"
    text = f"{objective}; start: {init}; {seen}; {a}"
    if training.get("epochs") is not None:
        text += f"; {training['epochs']} epochs"
    if training.get("wall_hours") is not None:
        text += f" in {training['wall_hours']:.2f} h on {training.get('device', 'an unnamed device')}"
    return text


def _physics(config: dict) -> str:
    return (f"{config['interaction']}, {config['scheme']} scheme, L = {config['box_length']:g}, "
            f"Nx = {config['cells']}, N = {config['n_particles']}, q = {config['charge']:g}, "
            f"q/m = {config['charge_over_mass']:g}, dt = {config['dt']:g}, {config['steps']} steps")


def _header(r: dict) -> list[str]:
    d, m = r["data"], r["machine"]
    T = d["times"][-1]
    layout = ("the authors' layout (no metadata.json: read as their generator's output, "
              "official scheme, paper preset)" if d.get("layout") == "authors" else "fastvp's layout")
    lines = [
        "# PDE-NHF evaluation",
        "",
        f"Data: `{d['path']}`, {layout}; physics: {_physics(d['config'])}. Test split: "
        f"{d['n_examples']} of {d['n_test']} examples, T = {T:g}.",
        f"Machine: {m['processor']}, {m['cpu_count']} CPUs" + (f", {m['gpu']}" if "gpu" in m else "")
        + f"; torch {m['torch']}; fastvp {r['fastvp_version']}; {r['date']}.",
        "",
        "Models:",
        "",
    ]
    if "baseline" in r:
        lines.append(f"- **baseline** (2 MLPs): {r['baseline']['n_parameters']:,} parameters, "
                     f"hidden width {r['baseline']['hidden']}.")
    for e in r["models"]:
        lines.append(f"- **{e['name']}**: a = {e['a']:.4f}, {e['n_parameters']:,} parameters, run "
                     f"in {e['dtype']} on {e['device']} with K = {e['K']} (trained with K = "
                     f"{e['train_K']}). Made by: {describe_training(e['training'])}.")
        if e.get("physics_mismatch"):
            lines.append(f"  **Physics differs from its training data** (evaluated anyway): "
                         f"{'; '.join(e['physics_mismatch'])}.")
    lines += ["", "Every model is fed each example's actual initial particles, so a perfect model "
              "has W1 = 0. *Identity* takes the initial particles as the prediction. W1 is the 1D "
              "Wasserstein-1 distance to the PIC sample, mean ± standard error over the test "
              "examples.", ""]
    return lines


def _table1(r: dict) -> list[str]:
    T = r["data"]["times"][-1]
    lines = [f"## Table 1: W1 at T = {T:g}", "",
             "| model | positions | momenta | positions, % of identity | momenta, % of identity |",
             "| --- | --- | --- | --- | --- |"]
    rows = [(f"{e['name']} (K = {e['K']})", e["table1"]) for e in r["models"]]
    if "baseline" in r["table1"]:
        rows.append(("baseline (2 MLPs)", r["table1"]["baseline"]))
    rows.append(("identity", r["table1"]["identity"]))
    for label, e in rows:
        pct = e.get("percent_of_identity", {"q": 100.0, "p": 100.0})
        lines.append(f"| {label} | {_pm(e['q'])} | {_pm(e['p'])} | {pct['q']:.2f} % | {pct['p']:.2f} % |")
    return lines + [""]


def _table2(r: dict) -> list[str]:
    T = r["data"]["times"][-1]
    lines = ["## Table 2: W1 at intermediate times", ""]
    for e in r["models"]:
        times = e["training"].get("supervised_times") if e["training"] else None
        seen = ("never supervised in its training" if times is not None
                and not any(abs(t - row["t"]) < 1e-9 for row in e["table2"] for t in times)
                else "supervised in its training" if times else "supervision unknown")
        chain = (f"; the chain's state at T equals the direct K-step sample to "
                 f"{e['chain_vs_direct_max_abs_diff']:.1e}" if e["chained_to_T"] else "")
        lines += [f"**{e['name']}** (these times: {seen}), continued from snapshot to snapshot "
                  f"with dt = T / {e['K']}{chain}.", "",
                  "| t | leapfrog steps | positions | momenta | identity positions | identity momenta |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for row in e["table2"]:
            lines.append(f"| {row['t']:g} | {row['leapfrog_steps']} | {_pm(row['pde_nhf']['q'])} | "
                         f"{_pm(row['pde_nhf']['p'])} | {_pm(row['identity']['q'])} | "
                         f"{_pm(row['identity']['p'])} |")
        ident = r["table1"]["identity"]
        lines += [f"| {T:g} | {e['K']} | {_pm(e['table1']['q'])} | {_pm(e['table1']['p'])} | "
                  f"{_pm(ident['q'])} | {_pm(ident['p'])} |", ""]
    return lines


def _table3(r: dict) -> list[str]:
    d = r["data"]
    T = d["times"][-1]
    lines = [f"## Table 3: fewer leapfrog steps (t = T = {T:g}, dt = T / K)", ""]
    for e in r["models"]:
        t3 = e["table3"]
        ref = next((row for row in t3 if row["K"] == e["K"]), t3[0])
        lines += [f"**{e['name']}**: W1 over the {d['n_examples']} test examples; wall time of "
                  f"one `model.sample(T, batch, steps=K)` call on the first "
                  f"{t3[0]['timed_examples']} of them ({e['dtype']}, {e['device']}).", "",
                  "| K | dt | positions | momenta | gradient evaluations | wall time (s) | "
                  "ms / example | speed-up | all examples (s) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for row in t3:
            lines.append(f"| {row['K']} | {row['dt']:.4g} | {_pm(row['q'])} | {_pm(row['p'])} | "
                         f"{row['gradient_evaluations']} | {row['wall_s']:.2f} | "
                         f"{row['ms_per_example']:.3f} | {ref['wall_s'] / row['wall_s']:.1f}x | "
                         f"{row['split_s_estimate']:.1f} |")
        lines.append("")
    pic = r["pic"]
    lines.append(f"PIC ({pic['scheme']} scheme, float64, same device) on the first "
                 f"{pic['n_examples']} test examples: {pic['ms_per_example']:.3f} ms / example; it "
                 f"reproduces the stored final snapshot to {pic['max_abs_diff_to_data']:.2e} "
                 "(max abs difference).")
    if "baseline" in r:
        b = r["baseline"]
        lines.append(f"Baseline: {b['n_parameters']:,} parameters (hidden width {b['hidden']}), "
                     f"{b['ms_per_example']:.4f} ms / example.")
    return lines + [""]


def _hamiltonian(r: dict) -> list[str]:
    lines = ["## Learned a (or fixed a) and the flow Hamiltonians", ""]
    for e in r["models"]:
        en = e["energy"]
        learned = "learned" if (e["training"] or {}).get("objective") == "likelihood" else \
            "not learned (fixed)" if e["training"] else "origin unknown"
        lines.append(f"- **{e['name']}**: a = {e['a']:.4f} ({learned}; inverse mass a^2 = "
                     f"{e['a'] ** 2:.4f}, the data were made with 1). Flow Hamiltonian "
                     f"H = a^2 |p|^2 / 2 + V(q) along {en['n_examples']} test examples, K = "
                     f"{en['K']} single steps to T: largest |H_k - H_0| is "
                     f"{en['max_rel_to_kinetic']:.2e} of the initial kinetic energy "
                     f"({en['max_rel_to_H0']:.2e} of |H_0|); at T, {en['final_rel_to_kinetic']:.2e}.")
    lines += ["", f"For scale, PIC's total (kinetic + field) energy changes by "
              f"{r['energy']['pic']['rel_change_mean']:.2e} (relative, mean) from 0 to T.", ""]
    return lines


CAPTIONS = {
    "cdf_final.png": "Cumulative histograms at T (Fig. 2 style), first test examples",
    "cdf_over_time.png": "Cumulative histograms of test example 0 over time",
    "phase_space.png": "Phase space at T, PIC vs PDE-NHF",
    "w1_vs_time.png": "W1 against time",
    "w1_vs_steps.png": "W1 and wall time against K",
}


def report_markdown(r: dict) -> str:
    """The markdown report of a results dictionary (as written to results.json)."""
    lines = _header(r) + _table1(r) + _table2(r) + _table3(r) + _hamiltonian(r)
    first = r["models"][0]["name"] + ", the first model" if r["models"] else "the baseline"
    lines += ["## Figures", "", f"(of {first})", ""]
    for name in r.get("figures", []):
        lines += [f"![{CAPTIONS.get(name, name)}]({name})", ""]
    return "\n".join(lines)
