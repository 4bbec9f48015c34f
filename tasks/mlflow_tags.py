"""The names the pipeline gives things in MLflow: registry aliases and tags. One home for them.

Pure constants (no imports), so the register step, the promotion gate and the champion's
evaluation all read and write the same names.

- Aliases of the registered model: every new version gets :data:`CHALLENGER`; the version in use
  has :data:`CHAMPION`.
- Tags of the MLflow run *and* its model version (:data:`LINEAGE_TAGS`): the Airflow ids, the data
  and eval fingerprints, the annotation watermark, the base model and the device.
- Tags of the model version only: its model fingerprint and the gate (metric, dim, value,
  decision, reason, and whether the decision was applied to the aliases).
- Tags of the run only: the gate's decision and reason as applied, and the registered version.

Example::

    from tasks.mlflow_tags import CHAMPION, TAG_GATE_VALUE

    version = client.get_model_version_by_alias(name, CHAMPION)
    float(version.tags[TAG_GATE_VALUE])
"""

from __future__ import annotations

#: Registry aliases.
CHAMPION = "champion"
CHALLENGER = "challenger"

#: The Airflow DAG and DAG run a step belongs to (how a retry finds its MLflow run again).
TAG_AIRFLOW_DAG_ID = "airflow_dag_id"
TAG_AIRFLOW_RUN_ID = "airflow_run_id"
TAG_DATA_FINGERPRINT = "data_fingerprint"
TAG_EVAL_FINGERPRINT = "eval_fingerprint"
TAG_ANNOTATION_WATERMARK = "annotation_watermark"
TAG_BASE_MODEL = "base_model"
TAG_DEVICE = "device"
#: Every tag of both the run and its model version, in the order they are written.
LINEAGE_TAGS = (
    TAG_AIRFLOW_DAG_ID,
    TAG_AIRFLOW_RUN_ID,
    TAG_DATA_FINGERPRINT,
    TAG_EVAL_FINGERPRINT,
    TAG_ANNOTATION_WATERMARK,
    TAG_BASE_MODEL,
    TAG_DEVICE,
)

#: Model-version tags: the model's fingerprint (the evaluation cache key of the champion) and the
#: gate as recorded at registration (read back for the history chart).
TAG_MODEL_FINGERPRINT = "model_fingerprint"
TAG_GATE_METRIC = "gate_metric"
TAG_GATE_DIM = "gate_dim"
TAG_GATE_VALUE = "gate_value"
#: The gate's decision and reason, on the version (as applied) and on the run.
TAG_GATE_DECISION = "gate_decision"
TAG_GATE_REASON = "gate_reason"
#: ``"true"`` once the decision moved the aliases of the version (so a retry moves nothing).
TAG_GATE_APPLIED = "gate_applied"

#: Run tag: the version the run registered.
TAG_MODEL_VERSION = "model_version"

#: The longest tag value written: a longer gate reason is cut to it.
MAX_TAG_VALUE = 5000
