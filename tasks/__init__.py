"""The work of the retraining pipeline as plain Python steps (no Airflow import anywhere).

Each step is a function with typed inputs and a command, ``python -m tasks <step> --run-dir DIR``,
that reads and writes files in a run directory (see ``tasks.cli``).
"""
