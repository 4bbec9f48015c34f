"""The ``report`` step: chart, markdown report and metrics file comparing base vs fine-tuned.

Reads ``eval/base.json`` and ``eval/finetuned.json`` and writes, under ``{run_dir}/report/``:

- ``ndcg_by_dim.png``: NDCG@10 per Matryoshka dim, base vs fine-tuned, values on the bars;
- ``report.md``: per-dim tables of the headline metrics with absolute and relative deltas;
- ``metrics.json``: every metric of both models at every dim.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks.evaluate import HEADLINE_METRICS
from tasks.io import StepError, read_json, write_atomic, write_json

MODELS = ("base", "finetuned")
LABELS = {"base": "base", "finetuned": "fine-tuned"}


def load_evaluations(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The evaluation results of both models in ``run_dir``."""
    evals = {}
    for name in MODELS:
        path = Path(run_dir) / "eval" / f"{name}.json"
        if not path.exists():
            raise StepError(f"{path} is missing: run the evaluate step for the {name} model first")
        evals[name] = read_json(path)
    return evals


def comparison_rows(evals: dict[str, dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Per-dim rows ``{dim, base, finetuned, delta, relative}`` for one metric."""
    rows = []
    for dim in evals["base"]["dims"]:
        base = evals["base"]["metrics"][str(dim)][metric]
        tuned = evals["finetuned"]["metrics"][str(dim)][metric]
        rows.append(
            {
                "dim": dim,
                "base": base,
                "finetuned": tuned,
                "delta": tuned - base,
                "relative": (tuned - base) / base if base else float("nan"),
            }
        )
    return rows


def format_table(evals: dict[str, dict[str, Any]], metric: str = "ndcg@10") -> str:
    """A plain-text/markdown table of one metric per dim."""
    lines = [
        f"| dim | base {metric} | fine-tuned {metric} | delta | relative |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in comparison_rows(evals, metric):
        lines.append(
            f"| {r['dim']} | {r['base']:.4f} | {r['finetuned']:.4f} | "
            f"{r['delta']:+.4f} | {r['relative']:+.1%} |"
        )
    return "\n".join(lines)


def chart_figure(evals: dict[str, dict[str, Any]], metric: str = "ndcg@10") -> Any:
    """Grouped bar chart (a matplotlib Figure) of ``metric`` per dim, base vs fine-tuned."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = comparison_rows(evals, metric)
    dims = [str(r["dim"]) for r in rows]
    width = 0.38
    xs = range(len(dims))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(dims) + 2), 4.5), dpi=120)
    colors = {"base": "#9aa5b1", "finetuned": "#2f6fde"}
    for offset, name in ((-width / 2, "base"), (width / 2, "finetuned")):
        values = [r[name] for r in rows]
        bars = ax.bar(
            [x + offset for x in xs], values, width, label=LABELS[name], color=colors[name]
        )
        ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], padding=2, fontsize=9)
    ax.set_xticks(list(xs), dims)
    ax.set_xlabel("Matryoshka dimension")
    ax.set_ylabel(metric.upper().replace("@", "@"))
    top = max(max(r["base"], r["finetuned"]) for r in rows)
    ax.set_ylim(0, min(1.0, top * 1.18 + 0.02) + 0.08)
    ax.set_title(f"{metric.upper()} by embedding dimension: base vs fine-tuned")
    ax.legend(loc="upper center", ncol=2, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    fig.tight_layout()
    return fig


def draw_chart(evals: dict[str, dict[str, Any]], path: Path, metric: str = "ndcg@10") -> Path:
    """Save :func:`chart_figure` as a PNG at ``path`` (atomically)."""
    import matplotlib.pyplot as plt

    fig = chart_figure(evals, metric)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path


def build_markdown(
    evals: dict[str, dict[str, Any]],
    manifest: dict[str, Any] | None,
    train_summary: dict[str, Any] | None,
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
            f"{train_summary['hardware'].get('device_name')}; best checkpoint "
            f"`{Path(train_summary['best_checkpoint'] or 'last epoch').name}`"
        )
    parts += ["", "![NDCG@10 by dim](ndcg_by_dim.png)", ""]
    for metric in HEADLINE_METRICS:
        parts += [f"## {metric}", "", format_table(evals, metric), ""]
    wins = [r for r in comparison_rows(evals, "ndcg@10") if r["delta"] > 0]
    total = len(evals["base"]["dims"])
    parts.append(f"Fine-tuned beats base on NDCG@10 at {len(wins)} of {total} dims.")
    return "\n".join(parts) + "\n"


def report(run_dir: Path) -> dict[str, Any]:
    """Write chart, report.md and metrics.json into ``run_dir/report``; returns the summary."""
    run_dir = Path(run_dir)
    out = run_dir / "report"
    evals = load_evaluations(run_dir)
    manifest_path = run_dir / "data" / "manifest.json"
    manifest = read_json(manifest_path) if manifest_path.exists() else None
    train_path = run_dir / "train" / "summary.json"
    train_summary = read_json(train_path) if train_path.exists() else None
    chart = draw_chart(evals, out / "ndcg_by_dim.png")
    write_atomic(out / "report.md", build_markdown(evals, manifest, train_summary))
    metrics = {
        "dims": evals["base"]["dims"],
        "models": {
            name: {
                "model_fingerprint": evals[name]["model_fingerprint"],
                "metrics": evals[name]["metrics"],
            }
            for name in MODELS
        },
        "eval_fingerprint": evals["base"]["eval_fingerprint"],
    }
    write_json(out / "metrics.json", metrics)
    ndcg = comparison_rows(evals, "ndcg@10")
    print(format_table(evals))
    return {
        "step": "report",
        "chart": str(chart),
        "report": str(out / "report.md"),
        "metrics": str(out / "metrics.json"),
        "ndcg@10": {
            str(r["dim"]): {"base": round(r["base"], 4), "finetuned": round(r["finetuned"], 4)}
            for r in ndcg
        },
        "improved_dims": sum(1 for r in ndcg if r["delta"] > 0),
    }
