"""The quality benchmark's figures: means and spreads over seeds, the targets, markdown tables.

Pure functions over the result JSON of :mod:`bench.quality`. For each data set and arm: NDCG@10 and
Recall@10 per dim (mean and spread over seeds) and seconds (train = ``mine`` + ``train`` steps;
run = every step, process starts and model loads included). The targets compare ``ours`` with
the best anchor (the recipes users would write instead) at every dim, with the base model, and
with the 4-epoch Phil Schmid recipe's train time.

Example::

    summary = summarize(result)   # {dataset: {"metrics", "seconds", "targets"}}
    print(markdown(result, labels))
"""

from __future__ import annotations

import statistics
from typing import Any

METRICS = ("ndcg@10", "recall@10")
#: The arms that are recipes a user would write instead of using the project (anchors).
ANCHORS = ("seed", "phil-1", "phil-4", "notebook-1", "notebook-4")
#: ours must beat the best anchor by this much NDCG@10 at every dim.
MARGIN = 0.02


def mean_spread(values: list[float]) -> dict[str, float]:
    """``{"mean", "spread" (max - min), "n"}`` of ``values``."""
    return {
        "mean": statistics.fmean(values),
        "spread": max(values) - min(values) if len(values) > 1 else 0.0,
        "n": len(values),
    }


def arm_metrics(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """``{metric: {dim: mean_spread}}`` over the seeds' runs of one arm."""
    dims = list(runs[0]["metrics"]["ndcg@10"])
    return {
        metric: {d: mean_spread([r["metrics"][metric][d] for r in runs]) for d in dims}
        for metric in METRICS
    }


def arm_seconds(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Mean seconds of the train steps (mine + train) and of the whole run."""
    return {
        "train": statistics.fmean(
            r["seconds"].get("mine", 0) + r["seconds"]["train"] for r in runs
        ),
        "run": statistics.fmean(sum(r["seconds"].values()) for r in runs),
    }


def targets(metrics: dict[str, Any], seconds: dict[str, Any]) -> dict[str, Any]:
    """Whether ``ours`` meets the targets on one data set (None where an arm is missing)."""
    if "ours" not in metrics:
        return {}
    ours = metrics["ours"]["ndcg@10"]
    base = metrics["base"]["ndcg@10"]
    dims = list(ours)
    anchors = [a for a in ANCHORS if a in metrics]
    best = {d: max((metrics[a]["ndcg@10"][d]["mean"] for a in anchors), default=None) for d in dims}
    lead = {d: ours[d]["mean"] - best[d] if best[d] is not None else None for d in dims}
    out: dict[str, Any] = {
        "lead_over_best_anchor": lead,
        "beats_best_anchor_by_margin": (
            all(v is not None and v >= MARGIN for v in lead.values()) if anchors else None
        ),
        "no_dim_below_base": all(ours[d]["mean"] >= base[d]["mean"] for d in dims),
        "smallest_dim_beats_base_at_largest": ours[dims[-1]]["mean"] >= base[dims[0]]["mean"],
    }
    if "phil-4" in seconds:
        out["train_time_vs_phil_4"] = seconds["ours"]["train"] / seconds["phil-4"]["train"]
    return out


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """Per data set: metrics and seconds per arm (the base model has metrics only) and targets."""
    summary = {}
    for name, ds in result["datasets"].items():
        metrics = {
            "base": {m: {d: mean_spread([v]) for d, v in ds["base"][m].items()} for m in METRICS}
        }
        seconds = {}
        for arm, runs in ds["runs"].items():
            if runs:
                metrics[arm] = arm_metrics(runs)
                seconds[arm] = arm_seconds(runs)
        summary[name] = {
            "metrics": metrics,
            "seconds": seconds,
            "targets": targets(metrics, seconds),
        }
    return summary


def _cell(value: dict[str, float], base: float | None) -> str:
    cell = f"{value['mean']:.4f}"
    if value["n"] > 1:
        cell += f" ± {value['spread'] / 2:.4f}"
    if base is not None:
        cell += f" ({value['mean'] - base:+.3f})"
    return cell


def table(name: str, summary: dict[str, Any], labels: dict[str, str], metric: str) -> str:
    """One data set's markdown table of ``metric`` per dim (difference to the base in brackets)."""
    metrics, seconds = summary["metrics"], summary["seconds"]
    dims = list(metrics["base"][metric])
    lines = [
        f"| {name}: {metric} | " + " | ".join(f"dim {d}" for d in dims) + " | train s | run s |",
        "|---|" + "---:|" * (len(dims) + 2),
    ]
    base = metrics["base"][metric]
    for arm, per_metric in metrics.items():
        cells = [
            _cell(per_metric[metric][d], None if arm == "base" else base[d]["mean"]) for d in dims
        ]
        secs = seconds.get(arm)
        times = [f"{secs['train']:.0f}", f"{secs['run']:.0f}"] if secs else ["", ""]
        lines.append(f"| {labels.get(arm, arm)} | " + " | ".join(cells + times) + " |")
    return "\n".join(lines)


def targets_line(summary: dict[str, Any]) -> str:
    """The targets of one data set in one line."""
    t = summary["targets"]
    if not t:
        return "Targets: ours was not run."
    lead = ", ".join(
        f"{d}: {v:+.3f}" if v is not None else f"{d}: -"
        for d, v in t["lead_over_best_anchor"].items()
    )
    parts = [
        f"ours - best anchor NDCG@10 by dim ({lead}): "
        + _verdict(t["beats_best_anchor_by_margin"], f">= +{MARGIN} at every dim"),
        "no dim below the base: " + _verdict(t["no_dim_below_base"]),
        "smallest dim >= the base at its largest: "
        + _verdict(t["smallest_dim_beats_base_at_largest"]),
    ]
    if "train_time_vs_phil_4" in t:
        ratio = t["train_time_vs_phil_4"]
        parts.append(f"train time {ratio:.2f}x Phil Schmid's 4 epochs: " + _verdict(ratio <= 1.0))
    return "Targets: " + "; ".join(parts) + "."


def _verdict(ok: bool | None, what: str = "") -> str:
    if ok is None:
        return "not measured"
    return ("met" if ok else "NOT met") + (f" ({what})" if what else "")


def markdown(result: dict[str, Any], labels: dict[str, str]) -> str:
    """Every data set's NDCG@10 and Recall@10 tables with its targets, then the provenance."""
    summary = summarize(result)
    blocks = []
    for name, ds_summary in summary.items():
        blocks += [
            table(name, ds_summary, labels, "ndcg@10"),
            "",
            table(name, ds_summary, labels, "recall@10"),
            "",
            targets_line(ds_summary),
            "",
        ]
    m = result["machine"]
    blocks.append(
        f"Seeds {result['seeds']}; {m['device_name']}, torch {m['torch']}, "
        f"sentence-transformers {m['sentence_transformers']}, {m['date']}. "
        f"Model {result['model']}. "
        f"Extra settings for every arm: {result['extra'] or 'none'}."
        + (f" {result['merged']}." if result.get("merged") else "")
    )
    return "\n".join(blocks)
