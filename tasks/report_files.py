"""The ``report`` step's files under ``{run_dir}/report/``: one home for their names.

Pure constants (no imports): the report step writes these files, ``register`` logs them to MLflow
as they are, ``publish`` reads the metrics, and the Airflow UI's report view serves them.

Example::

    from tasks.report_files import GATE_FILE, METRICS_FILE, OUTPUTS, REPORT_DIR

    run_dir / REPORT_DIR / GATE_FILE       # the gate's decision
    [run_dir / REPORT_DIR / name for name in OUTPUTS]
"""

from __future__ import annotations

#: The folder of the run directory the report step writes to.
REPORT_DIR = "report"
#: The report itself: the decision, per-dim tables with deltas, both charts.
MARKDOWN_FILE = "report.md"
#: Every metric of every model at every dim, plus the decision (written last).
METRICS_FILE = "metrics.json"
#: The promotion gate's decision with its numbers.
GATE_FILE = "gate.json"
#: NDCG@10 per Matryoshka dim for base, champion and challenger.
CHART_FILE = "ndcg_by_dim.png"
#: The gate metric of every registered version and of this run's challenger.
HISTORY_CHART_FILE = "gate_history.png"
#: Every file the step writes under ``report/``.
OUTPUTS = (MARKDOWN_FILE, METRICS_FILE, GATE_FILE, CHART_FILE, HISTORY_CHART_FILE)
