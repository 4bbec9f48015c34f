"""Airflow extension points of the retraining pipeline: step runners, hooks (never torch).

- :mod:`embedding_ops.runners`: the factory turning a step into an operator (local, docker,
  kubernetes);
- :mod:`embedding_ops.step_spec`: the command line, environment and secrets every runner uses;
- :mod:`embedding_ops.step_operator`: the local runner, ``python -m tasks <step>`` as a subprocess;
- :mod:`embedding_ops.docker_runner` / :mod:`embedding_ops.kubernetes_runner`: the same step in a
  container / a pod of the task image;
- :mod:`embedding_ops.contract`: the step contract (summary line, exit codes) shared by runners;
- :mod:`embedding_ops.queues`: the worker queue of each task (heavy steps on the GPU queue, the
  rest on the CPU queue; CeleryExecutor);
- :mod:`embedding_ops.shared_run_dir`: who wrote a run directory, and one clear line when a worker
  on another host cannot see it;
- :mod:`embedding_ops.mlflow_hook`: MLflow settings from the ``mlflow_default`` connection;
- :mod:`embedding_ops.hf_hook`: the Hub token/endpoint from the ``huggingface_default`` connection
  (handed to the ``publish`` step only);
- :mod:`embedding_ops.argilla_hook`: Argilla URL and API key from the ``argilla_default``
  connection (handed to the ``prepare`` step only);
- :mod:`embedding_ops.argilla_sensor` / :mod:`embedding_ops.argilla_trigger`: wait (deferred) for
  new submitted Argilla annotations;
- :mod:`embedding_ops.watermark`: the annotation watermark, the annotations asset and the commit
  task.
"""
