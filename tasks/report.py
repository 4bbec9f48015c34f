"""The ``report`` step: compare base, champion and fine-tuned (the challenger), and decide the gate.

Reads ``eval/base.json``, ``eval/finetuned.json`` and, when the champion was evaluated,
``eval/champion.json`` and ``eval/history.json``; writes, under ``{run_dir}/report/`` (the names
are those of :mod:`tasks.report_files`):

- ``ndcg_by_dim.png``: NDCG@10 per Matryoshka dim for base, champion and challenger, values on
  the bars;
- ``gate.json``: the promotion gate's decision with its numbers (the rule is :mod:`tasks.gate`);
- ``gate_history.png``: the gate metric of every registered version and of this run's challenger;
- ``report.md``: the decision, per-dim tables of the headline metrics with deltas, both charts;
- ``metrics.json``: every metric of every model at every dim, plus the decision (written last).

The tables and the markdown are pure functions of the evaluations (:func:`comparison_rows`,
:func:`format_table`, :func:`build_markdown`); the charts are matplotlib figures
(:func:`chart_figure`, :func:`history_figure`); :func:`report` reads and writes the files.

Example::

    from tasks.report import format_table, load_evaluations

    print(format_table(load_evaluations(run_dir), "mrr@10"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks.config import RunConfig
from tasks.gate import gate_decision
from tasks.io import StepError, prepared, read_json, write_atomic, write_json
from tasks.metrics import HEADLINE_METRICS
from tasks.report_files import (
    CHART_FILE,
    GATE_FILE,
    HISTORY_CHART_FILE,
    MARKDOWN_FILE,
    METRICS_FILE,
    OUTPUTS,
    REPORT_DIR,
)

__all__ = [
    "OUTPUTS",  # importable from here too (its home is tasks.report_files)
    "build_markdown",
    "chart_figure",
    "comparison_rows",
    "draw_chart",
    "format_table",
    "history_figure",
    "load_evaluations",
    "metrics_record",
    "report",
    "save_figure",
]

MODELS = ("base", "finetuned")
#: The metric of the chart (``ndcg_by_dim.png``), the "beats base at n dims" line and the step's
#: summary; one of :data:`tasks.metrics.HEADLINE_METRICS`.
CHART_METRIC = "ndcg@10"
COLORS = {"base": "#9aa5b1", "champion": "#e0a030", "finetuned": "#2f6fde"}


def load_evaluations(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The evaluation results in ``run_dir``: base, finetuned and (if there is one) champion."""
    evals = {}
    for name in MODELS:
        path = Path(run_dir) / "eval" / f"{name}.json"
        if not path.exists():
            raise StepError(f"{path} is missing: run the evaluate step for the {name} model first")
        evals[name] = read_json(path)
    champion = Path(run_dir) / "eval" / "champion.json"
    if champion.exists():
        result = read_json(champion)
        if not result.get("absent"):
            evals["champion"] = result
    return evals


def _labels(evals: dict[str, dict[str, Any]]) -> dict[str, str]:
    labels = {"base": "base", "finetuned": "fine-tuned"}
    if "champion" in evals:
        labels["champion"] = f"champion v{evals['champion'].get('version')}"
        labels["finetuned"] = "fine-tuned (challenger)"
    return labels


def _order(evals: dict[str, dict[str, Any]]) -> list[str]:
    return [m for m in ("base", "champion", "finetuned") if m in evals]


def comparison_rows(evals: dict[str, dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Per-dim rows ``{dim, base, finetuned, delta, relative[, champion, vs_champion]}``."""
    rows = []
    for dim in evals["base"]["dims"]:
        base = evals["base"]["metrics"][str(dim)][metric]
        tuned = evals["finetuned"]["metrics"][str(dim)][metric]
        row = {
            "dim": dim,
            "base": base,
            "finetuned": tuned,
            "delta": tuned - base,
            "relative": (tuned - base) / base if base else float("nan"),
        }
        if "champion" in evals:
            champ = evals["champion"]["metrics"][str(dim)][metric]
            row["champion"] = champ
            row["vs_champion"] = tuned - champ
        rows.append(row)
    return rows


def format_table(evals: dict[str, dict[str, Any]], metric: str = CHART_METRIC) -> str:
    """A plain-text/markdown table of one metric per dim (with the champion when there is one)."""
    champion = "champion" in evals
    head = f"| dim | base {metric} |"
    rule = "|---:|---:|"
    if champion:
        head += f" champion v{evals['champion'].get('version')} |"
        rule += "---:|"
    head += f" fine-tuned {metric} | delta | relative |"
    rule += "---:|---:|---:|"
    if champion:
        head += " vs champion |"
        rule += "---:|"
    lines = [head, rule]
    for r in comparison_rows(evals, metric):
        line = f"| {r['dim']} | {r['base']:.4f} |"
        if champion:
            line += f" {r['champion']:.4f} |"
        line += f" {r['finetuned']:.4f} | {r['delta']:+.4f} | {r['relative']:+.1%} |"
        if champion:
            line += f" {r['vs_champion']:+.4f} |"
        lines.append(line)
    return "\n".join(lines)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def chart_figure(evals: dict[str, dict[str, Any]], metric: str = CHART_METRIC) -> Any:
    """Grouped bar chart (a matplotlib Figure) of ``metric`` per dim for every evaluated model."""
    plt = _pyplot()
    rows = comparison_rows(evals, metric)
    models = _order(evals)
    labels = _labels(evals)
    dims = [str(r["dim"]) for r in rows]
    width = 0.8 / len(models)
    xs = range(len(dims))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.9 * len(dims) + 2), 4.5), dpi=120)
    for i, name in enumerate(models):
        offset = (i - (len(models) - 1) / 2) * width
        values = [r[name] for r in rows]
        bars = ax.bar(
            [x + offset for x in xs], values, width, label=labels[name], color=COLORS[name]
        )
        ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], padding=2, fontsize=8)
    ax.set_xticks(list(xs), dims)
    ax.set_xlabel("Matryoshka dimension")
    ax.set_ylabel(metric.upper())
    top = max(r[m] for r in rows for m in models)
    ax.set_ylim(0, min(1.0, top * 1.18 + 0.02) + 0.08)
    ax.set_title(f"{metric.upper()} by embedding dimension")
    ax.legend(loc="upper center", ncol=len(models), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    fig.tight_layout()
    return fig


def history_figure(history: list[dict[str, Any]], gate: dict[str, Any]) -> Any:
    """The gate metric of every registered version and of this run's challenger (a Figure).

    Each version's value is the one recorded when it was registered (on the eval set of its own
    run); the dashed line is the current champion on this run's eval set.
    """
    plt = _pyplot()
    points = [
        (f"v{h['version']}", h["gate_value"], h.get("decision"), "champion" in h.get("aliases", []))
        for h in history
        if h.get("gate_value") is not None
    ]
    points.append(("this run", gate["challenger_value"], gate["decision"], gate["promoted"]))
    colors = {"promoted": "#2f9e44", "rejected": "#e03131"}
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(points) + 3), 4.0), dpi=120)
    xs = list(range(len(points)))
    ax.plot(xs, [p[1] for p in points], color="#adb5bd", zorder=1)
    for x, (_label, value, decision, champion) in zip(xs, points):
        ax.scatter(
            [x],
            [value],
            s=90 if champion else 45,
            marker="*" if champion else "o",
            color=colors.get(decision or "", "#868e96"),
            zorder=2,
        )
        ax.annotate(
            f"{value:.3f}",
            (x, value),
            textcoords="offset points",
            xytext=(0, 7),
            ha="center",
            fontsize=8,
        )
    ax.set_xticks(xs, [p[0] for p in points])
    if gate["reference"] == "champion":
        ax.axhline(
            gate["reference_value"],
            ls="--",
            color="#e0a030",
            label=f"champion v{gate['reference_version']} on this eval set",
        )
    else:
        ax.axhline(
            gate["reference_value"], ls="--", color="#9aa5b1", label="base model on this eval set"
        )
    for decision, color in colors.items():
        ax.scatter([], [], color=color, label=decision)
    ax.scatter([], [], marker="*", s=90, color="#868e96", label="champion (after this run)")
    metric = f"{gate['metric'].upper()} @ dim {gate['dim']}"
    ax.set_ylabel(metric)
    ax.set_xlabel("model version")
    ax.set_title(f"Promotion gate history: {metric}")
    ax.legend(fontsize=8, frameon=False, loc="best")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def save_figure(fig: Any, path: Path) -> Path:
    """Save a matplotlib Figure as a PNG at ``path`` atomically, and close it."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path


def draw_chart(evals: dict[str, dict[str, Any]], path: Path, metric: str = CHART_METRIC) -> Path:
    """Save :func:`chart_figure` as a PNG at ``path`` (atomically)."""
    return save_figure(chart_figure(evals, metric), path)


def _gate_markdown(gate: dict[str, Any]) -> list[str]:
    verdict = "**promoted**" if gate["promoted"] else "**not promoted**"
    ref = f"champion v{gate['reference_version']}" if gate["reference"] == "champion" else "base"
    lines = [
        "## Promotion gate",
        "",
        f"Decision: {verdict}. {gate['reason']}.",
        "",
        f"Rule: {gate['metric']} at dim {gate['dim']} must beat {ref} by more than "
        f"{gate['margin']:.4f}, and no dim may fall more than {gate['tolerance']:.4f}.",
        "",
        f"| dim | {ref} | challenger | delta | |",
        "|---:|---:|---:|---:|:---|",
    ]
    for dim, row in gate["per_dim"].items():
        flag = "gate dim" if int(dim) == gate["dim"] else ""
        if int(dim) in gate["regressions"]:
            flag = (flag + ", " if flag else "") + "regressed beyond tolerance"
        lines.append(
            f"| {dim} | {row['reference']:.4f} | {row['challenger']:.4f} | "
            f"{row['delta']:+.4f} | {flag} |"
        )
    lines += ["", f"![gate history]({HISTORY_CHART_FILE})", ""]
    return lines


def kept_checkpoint(train_summary: dict[str, Any]) -> str:
    """The name of the checkpoint that became the model (``checkpoint-N``)."""
    choice = train_summary.get("checkpoint")
    if choice:
        return f"checkpoint-{choice['step']}"
    # summaries written before the choice was recorded kept the best validation checkpoint
    return Path(train_summary.get("best_checkpoint") or "last epoch").name


def build_markdown(
    evals: dict[str, dict[str, Any]],
    manifest: dict[str, Any] | None,
    train_summary: dict[str, Any] | None,
    gate: dict[str, Any] | None = None,
) -> str:
    """The run's report.md text."""
    parts = ["# Fine-tuning report", ""]
    if manifest:
        c = manifest["counts"]
        parts += [
            f"- base model: `{manifest['base_model']['ref']}`",
            f"- data: {c['train_pairs']} training pairs, {c['eval_queries']} eval queries over "
            f"{c['eval_corpus']} documents (data fingerprint `{manifest['fingerprints']['data']}`, "
            f"eval fingerprint `{manifest['fingerprints']['eval']}`)",
        ]
    if train_summary:
        parts.append(
            f"- training: {train_summary['epochs']} epoch(s), {train_summary['steps']} "
            f"steps in {train_summary['train_runtime_s']:.0f}s on "
            f"{train_summary['hardware'].get('device_name')}; kept "
            f"`{kept_checkpoint(train_summary)}`"
        )
    parts += ["", f"![NDCG@10 by dim]({CHART_FILE})", ""]
    if gate:
        parts += _gate_markdown(gate)
    for metric in HEADLINE_METRICS:
        parts += [f"## {metric}", "", format_table(evals, metric), ""]
    wins = [r for r in comparison_rows(evals, CHART_METRIC) if r["delta"] > 0]
    total = len(evals["base"]["dims"])
    parts.append(f"Fine-tuned beats base on NDCG@10 at {len(wins)} of {total} dims.")
    return "\n".join(parts) + "\n"


def metrics_record(evals: dict[str, dict[str, Any]], gate: dict[str, Any]) -> dict[str, Any]:
    """The content of ``metrics.json``: the dims, every metric of every evaluated model (with the
    champion's version), the eval fingerprint and the gate's decision."""
    models: dict[str, Any] = {}
    for name in _order(evals):
        models[name] = {
            "model_fingerprint": evals[name]["model_fingerprint"],
            "metrics": evals[name]["metrics"],
        }
        if name == "champion":
            models[name]["version"] = evals[name].get("version")
    return {
        "dims": evals["base"]["dims"],
        "models": models,
        "eval_fingerprint": evals["base"]["eval_fingerprint"],
        "gate": gate,
    }


def _run_config(run_dir: Path) -> RunConfig:
    return RunConfig.from_mapping(read_json(prepared(run_dir / "config.json")))


def report(run_dir: Path, cfg: RunConfig | None = None) -> dict[str, Any]:
    """Write charts, gate decision, report.md and metrics.json into ``run_dir/report``.

    ``cfg`` gives the gate's settings (default: the run's ``config.json``). Returns the summary.
    """
    run_dir = Path(run_dir)
    cfg = cfg or _run_config(run_dir)
    out = run_dir / REPORT_DIR
    evals = load_evaluations(run_dir)
    manifest_path = run_dir / "data" / "manifest.json"
    manifest = read_json(manifest_path) if manifest_path.exists() else None
    train_path = run_dir / "train" / "summary.json"
    train_summary = read_json(train_path) if train_path.exists() else None
    gate = gate_decision(
        cfg, base=evals["base"], challenger=evals["finetuned"], champion=evals.get("champion")
    )
    history_path = run_dir / "eval" / "history.json"
    history = read_json(history_path)["versions"] if history_path.exists() else []
    chart = draw_chart(evals, out / CHART_FILE)
    save_figure(history_figure(history, gate), out / HISTORY_CHART_FILE)
    write_json(out / GATE_FILE, gate)
    write_atomic(out / MARKDOWN_FILE, build_markdown(evals, manifest, train_summary, gate))
    write_json(out / METRICS_FILE, metrics_record(evals, gate))  # last: marks the step complete
    ndcg = comparison_rows(evals, CHART_METRIC)
    print(format_table(evals))
    print(f"report: gate {gate['decision']}: {gate['reason']}", flush=True)
    return {
        "step": "report",
        "chart": str(chart),
        "report": str(out / MARKDOWN_FILE),
        "metrics": str(out / METRICS_FILE),
        CHART_METRIC: {
            str(r["dim"]): {k: round(r[k], 4) for k in ("base", "champion", "finetuned") if k in r}
            for r in ndcg
        },
        "improved_dims": sum(1 for r in ndcg if r["delta"] > 0),
        "gate": {k: gate[k] for k in ("decision", "reason", "reference", "delta")},
    }
