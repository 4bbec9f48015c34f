#!/bin/bash
# First start of the stack's PostgreSQL: databases and roles for MLflow and Argilla beside
# Airflow's (POSTGRES_PASSWORD from .env is the password of all three roles).
set -euo pipefail
for name in mlflow argilla; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE $name LOGIN PASSWORD '$POSTGRES_PASSWORD';
CREATE DATABASE $name OWNER $name;
SQL
done
