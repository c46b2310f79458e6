#!/usr/bin/env bash
# Apache Airflow 3 in a virtualenv of its own, build/airflow-venv: the test that runs the
# DAG `mlplan pipeline export --format airflow` writes (tests/pipeline/test_airflow.py) runs
# it with this Airflow's `airflow dags test`, as a scheduler would, in a process apart from
# mlplan's (Airflow pins its own SQLAlchemy, FastAPI and pydantic). Installed here once, at
# build time, so that nothing is downloaded when the test runs; beside it, an Airflow
# metadata database already migrated (SQLite), which the test copies instead of spending
# its seconds on `airflow db migrate`.
# Idempotent: a stamp names the versions installed, so a second run is instant. Says loudly
# what it could not do (the Airflow test then fails, naming this script).
set -uo pipefail
cd "$(dirname "$0")/.."

AIRFLOW_VERSION=3.3.2
STANDARD_PROVIDER_VERSION=1.21.0  # apache-airflow-providers-standard: BashOperator
PYTHON="${AIRFLOW_PYTHON:-python3.11}"  # a Python that Airflow 3.3 supports
VENV=build/airflow-venv
STAMP="$VENV/.installed-$AIRFLOW_VERSION-$STANDARD_PROVIDER_VERSION"
MIGRATED="$VENV/airflow-migrated.db"

[ -f "$STAMP" ] && exit 0

fail() {
  echo "!! $1; tests/pipeline/test_airflow.py will fail (run scripts/airflow-venv.sh again)." >&2
  rm -rf "$VENV"
  exit 0
}

echo "Installing Apache Airflow $AIRFLOW_VERSION into $VENV (once; a few minutes)…"
rm -rf "$VENV"
command -v "$PYTHON" >/dev/null 2>&1 || fail "no $PYTHON to make Airflow's virtualenv with"
"$PYTHON" -m venv "$VENV" || fail "$PYTHON could not make a virtualenv in $VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null || fail "pip could not upgrade itself in $VENV"
"$VENV/bin/python" -m pip install --quiet \
  "apache-airflow==$AIRFLOW_VERSION" \
  "apache-airflow-providers-standard==$STANDARD_PROVIDER_VERSION" \
  || fail "pip could not install apache-airflow $AIRFLOW_VERSION"

home="$(mktemp -d)"
AIRFLOW_HOME="$home" \
  AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$PWD/$MIGRATED" \
  AIRFLOW__CORE__LOAD_EXAMPLES=False \
  "$VENV/bin/airflow" db migrate >"$home/migrate.log" 2>&1 \
  || { cat "$home/migrate.log" >&2; rm -rf "$home"; fail "airflow db migrate failed"; }
rm -rf "$home"
touch "$STAMP"
echo "Apache Airflow $AIRFLOW_VERSION is in $VENV."
exit 0
