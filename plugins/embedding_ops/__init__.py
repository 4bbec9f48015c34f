"""Airflow extension points of the retraining pipeline: step runners, hooks (never torch).

- :mod:`embedding_ops.runners`: the factory turning a step into an operator (local, ...);
- :mod:`embedding_ops.step_operator`: the local runner, ``python -m tasks <step>`` as a subprocess;
- :mod:`embedding_ops.contract`: the step contract (summary line, exit codes) shared by runners;
- :mod:`embedding_ops.mlflow_hook`: MLflow settings from the ``mlflow_default`` connection;
- :mod:`embedding_ops.hf_hook`: the Hub token/endpoint from the ``huggingface_default`` connection
  (handed to the ``publish`` step only).
"""
