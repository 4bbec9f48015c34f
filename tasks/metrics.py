"""The retrieval metrics the pipeline records, and the ones it shows: one home for their names.

Pure constants (no imports), so the config, the evaluation, the report, the model card and the
Airflow UI's report view all read the same list.

Example::

    from tasks.metrics import HEADLINE_METRICS, recorded_metrics

    HEADLINE_METRICS          # ('ndcg@10', 'mrr@10', 'recall@1', 'recall@5', 'recall@10')
    "map@100" in recorded_metrics()   # True
"""

from __future__ import annotations

ACCURACY_AT_K = (1, 3, 5, 10)
PRECISION_RECALL_AT_K = (1, 3, 5, 10)
MRR_AT_K = (10,)
NDCG_AT_K = (10,)
MAP_AT_K = (100,)
#: Metrics shown in reports, the model card and the UI, and those the promotion gate may use
#: (every metric in :func:`recorded_metrics` is recorded).
HEADLINE_METRICS = ("ndcg@10", "mrr@10", "recall@1", "recall@5", "recall@10")


def recorded_metrics() -> tuple[str, ...]:
    """Every metric name the evaluation records per dim, in its order."""
    return (
        *(f"accuracy@{k}" for k in ACCURACY_AT_K),
        *(name for k in PRECISION_RECALL_AT_K for name in (f"precision@{k}", f"recall@{k}")),
        *(f"mrr@{k}" for k in MRR_AT_K),
        *(f"ndcg@{k}" for k in NDCG_AT_K),
        *(f"map@{k}" for k in MAP_AT_K),
    )
