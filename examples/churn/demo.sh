#!/usr/bin/env bash
# The churn example, end to end: plan → dataset versions → diff → split → labels → models →
# evaluation → deployment → rollouts → monitoring → retraining on an alert through the pipeline
# (mlplan run) → status → lineage. Runs in build/demo (made anew each time); `make demo` calls it with the venv ready.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
demo="$root/build/demo"
mlplan="${MLPLAN:-$root/.venv/bin/mlplan}"
python="${PYTHON:-$root/.venv/bin/python}"
export MLPLAN_USER="${MLPLAN_USER:-demo}"
export COLUMNS="${COLUMNS:-120}"  # wide enough for the tables when not on a terminal
unset MLPLAN_STORE_URL  # the demo keeps its store in build/demo/.mlplan
step() { printf '\n\033[1m── %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

rm -rf "$demo" && mkdir -p "$demo"
cd "$demo"
step "Generate the example data (seeded; nothing is downloaded)" \
  "$python" "$here/generate.py" data

step "A new project starts with mlplan init, pre-filled from a scan of the data" \
  "$mlplan" init churn --from-data data/customers.csv --yes --project scratch
sed -n '/^datasets:/,/^# ── Labels/p' scratch/mlplan.yaml | head -32

cp "$here/mlplan.yaml" mlplan.yaml
step "This demo uses the team's filled-in plan (examples/churn/mlplan.yaml)" \
  "$mlplan" plan validate
step "Register the November export" \
  "$mlplan" data add customers
step "Its datasheet" \
  "$mlplan" data show customers@1
step "The same bytes again: no new version" \
  "$mlplan" data add customers data/customers.csv
step "Register the December export as version 2" \
  "$mlplan" data add customers data/customers_2026-12.csv \
  --source "CRM export 2026-12 (nightly snapshot of the customers table)" \
  --collected 2016-11-01:2026-11-30
step "What changed between the exports" \
  "$mlplan" data diff customers@1 customers@2
step "Split version 2: stratified by the target, no customer in two splits" \
  "$mlplan" data split customers --test 0.2 --valid 0.1 --stratify churned \
  --group customer_id --seed 7
step "Labels: what would a round of labeling cost with each strategy?" \
  "$mlplan" labels estimate --n 600
step "Export a batch of 600 customers to the in-house team, 30% labeled twice" \
  "$mlplan" labels export customers@2 --n 600 --overlap 0.3 --seed 7
step "Simulate the annotators (one of them careless)" \
  "$python" "$here/simulate_annotations.py" labels/batch-1.csv data/customers_2026-12.csv \
  labels/batch-1-labeled.csv
step "Import their labels" \
  "$mlplan" labels import labels/batch-1-labeled.csv --batch 1
step "How much do they agree? Who is careless?" \
  "$mlplan" labels agreement
step "Human-level performance, overall and per slice" \
  "$mlplan" labels hlp
step "Items to relabel" \
  bash -c "'$mlplan' labels queue | head -n 14"
step "Send them to annotators who have not seen them" \
  "$mlplan" labels queue --export
step "Every batch, and what came back" \
  "$mlplan" labels batches
step "Modeling: the quick-and-dirty baseline, packaged as ONNX and checked for parity" \
  "$mlplan" train --baseline
step "A stronger family: gradient-boosted trees" \
  "$mlplan" train --family gbt
step "The models against the trivial baseline, HLP and the literature (test split)" \
  "$mlplan" models compare
step "Error analysis of the candidate: slices with intervals, FP/FN, where to focus, discovered slices, risks, gates" \
  "$mlplan" evaluate logistic-1
step "The gates as a CI step would run them: exit 1 when one fails" \
  bash -c "'$mlplan' evaluate logistic-1 --gate > /dev/null || echo \"exit code \$?\""
step "The ML lead accepts the gaps for a shadow pilot, on the record (this package version, its newest evaluation only)" \
  "$mlplan" approve deploy --role ml_lead --by "Priya Patel" --subject logistic-1 \
  --note "shadow pilot only; the ethnicity recall gap is tracked"
step "The model card (Hugging Face format; HTML beside it, and the report)" \
  bash -c "sed -n '1,24p' reports/logistic-1/model-card.md; ls reports/logistic-1"
# ── Deployment: the same package served in realtime and scored in batch ──────────────────
step "The approved package version goes to production (a deploy run records the change)" \
  "$mlplan" deploy logistic-1 --by "Priya Patel" --note "shadow pilot, approved by the ML lead"
step "API keys by role: the retention app may predict; the ML lead administers" \
  bash -c "'$mlplan' keys create --name retention-app --role predict --json > .app-key.json && '$mlplan' keys create --name ml-lead --role admin --json > .admin-key.json && '$mlplan' keys list"
port="$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
printf '\n\033[1m── Serve production (the logistic-1 version deployed) on 127.0.0.1:%s (live at once, ready once loaded and warmed up), its rollout controller beside it\033[0m\n' "$port"
"$mlplan" serve --deployment production --controller --port "$port" > serve.log 2>&1 &
server=$!
until grep -q "logistic-1 ready" serve.log; do
  kill -0 "$server" 2> /dev/null || { cat serve.log; exit 1; }
  sleep 0.2
done
cat serve.log
step "A client: a prediction, a request with mistakes, no key, feedback, the metrics" \
  "$python" "$here/client.py" "http://127.0.0.1:$port" .app-key.json .admin-key.json

# ── Rollout: shadow, canary, blue-green, and a bad candidate rolled back by itself ───────
traffic() { "$python" "$here/traffic.py" "http://127.0.0.1:$port" .app-key.json .admin-key.json \
  data/customers_2026-12.csv "$@"; }
cleared() {  # evaluate a candidate; the ML lead accepts its known gaps for a rollout
  "$mlplan" evaluate "$1" > /dev/null
  "$mlplan" approve deploy --role ml_lead --by "Priya Patel" --subject "$1" --note "$2" > /dev/null
  echo "$1 evaluated, and cleared for a rollout by the ML lead: $2"
}
step "The stronger family, gbt-1, evaluated and cleared to roll out" \
  cleared gbt-1 "rollout behind logistic-1, guarded"
step "Assist scenario: gbt-1 scores every request in shadow, off the request path" \
  "$mlplan" deploy gbt-1 --by "Priya Patel" --note "shadow first: compare with logistic-1 and the team's picks"
step "The retention app's traffic, outcomes and the team's own picks fed back, until the controller has judged the shadow" \
  traffic --until paused,rolled_back,aborted
step "What the shadow found: both models side by side, against the outcomes and the people" \
  "$mlplan" rollout status production
step "The shadow agrees: the ML lead ends it and canaries gbt-1 through the plan's steps" \
  bash -c "'$mlplan' rollout abort production --by 'Priya Patel' --note 'shadow passed; canary next' > /dev/null && '$mlplan' deploy gbt-1 --strategy canary --by 'Priya Patel'"
step "Traffic until the controller promotes it (or stops it)" \
  traffic --until promoted,rolled_back,paused,aborted
step "A retrained gbt (another seed) goes blue-green: warmed beside blue, switched at once, watched, then promoted" \
  bash -c "'$mlplan' train --family gbt --seed 8 > /dev/null && echo trained gbt-2"
step "gbt-2 evaluated and cleared" cleared gbt-2 "the nightly retrain"
step "Blue-green: green is loaded and warmed before the switch" \
  "$mlplan" deploy gbt-2 --strategy blue-green --by "Priya Patel"
step "Traffic through the switch and the rollback window" \
  traffic --until promoted,rolled_back,paused,aborted
# A teammate tries class weights: the scores move for everyone, the ranking hardly at all.
sed -i 's/^  seed: 7$/  seed: 7\n  hyperparameters: {logistic: {class_weight: balanced}}/' mlplan.yaml
step "A deliberately bad candidate: logistic with balanced class weights (its scores shift)" \
  bash -c "'$mlplan' train --family logistic > /dev/null && echo trained logistic-2"
step "It is cleared as any other (its evaluation's ranking is fine)" cleared logistic-2 "an experiment"
step "A canary of it" "$mlplan" deploy logistic-2 --strategy canary --by "Sam Okafor"
step "Traffic: the controller rolls it back on its own once its outputs fail the guards" \
  traffic --until promoted,rolled_back,paused,aborted
step "Every rollout of production, and the last one move by move: who, why, and the figures that decided it" \
  bash -c "'$mlplan' rollout history production > history.txt; grep '^#' history.txt; sed -n '/^#[0-9]* canary of logistic-2/,\$p' history.txt | tail -n +2"
# ── Monitoring: drift, the estimate before labels beside the realised metric, business ─────
monitoring_started=$SECONDS
step "Monitored traffic: a window as usual, then one with north's prices up by 40; the outcomes (and the revenue of the customers called who stayed) come after" \
  bash -c "'$python' '$here/traffic.py' 'http://127.0.0.1:$port' .app-key.json .admin-key.json data/customers_2026-12.csv --monitored 6 > monitored.txt; tail -n +2 monitored.txt"
read -r since until < monitored.txt
step "The monitor over those windows: the drifted feature, the estimate beside the realised metric, the business sum" \
  "$mlplan" monitor production --window 6s --since "$since" --until "$until"
step "The plan's alert rules, checked as of the drifted window's end: the input-drift rule fires (exit 1, as cron or CI would see it)" \
  bash -c "'$mlplan' monitor check production --at '$until' && echo 'no rule fired' || echo \"exit \$?: an alert is open; mlplan alerts ack ID --by WHO once someone is on it\""
step "The input item of the checklist, from the stored windows" \
  bash -c "'$mlplan' status --json | '$python' -c 'import json, sys; (i,) = [i for i in json.load(sys.stdin)[\"items\"] if i[\"id\"] == \"monitor.input\"]; print(i[\"state\"], \"-\", i[\"evidence\"])'"
echo "(the monitoring section took $((SECONDS - monitoring_started)) s)"
# ── The retraining loop: the drift alert runs the pipeline on the newest data ──────────────
step "January's export lands where the plan reads it (north's prices up by 40 there too)" \
  cp data/customers_2027-01.csv data/customers.csv
step "The class-weight experiment is over (dropped from the plan); retraining keeps the family in production; and the team defines derived features once in the plan" \
  bash -c "sed -i -e '/class_weight: balanced/d' -e 's/^  families: \[logistic, gbt\]/  families: [gbt]/' mlplan.yaml && cat '$here/features.yaml' >> mlplan.yaml && grep -n 'families:' mlplan.yaml && sed -n '/^features:/,\$p' mlplan.yaml"
step "What the alert would start, step by step, and why (nothing recorded)" \
  "$mlplan" run --if-alerted --dry-run
step "The input-drift alert starts the pipeline: new data version, split, train, compare, evaluate, gates" \
  bash -c "'$mlplan' run --if-alerted || echo \"exit \$?: the pipeline stopped at a step; its run resumes there\""
candidate="$("$mlplan" run --dry-run --json | "$python" -c 'import json, sys; print(next(s for s in json.load(sys.stdin)["steps"] if s["step"] == "evaluate")["outputs"]["model"])')"
step "The ML lead reviews $candidate's gaps and accepts them for a canary, on the record" \
  "$mlplan" approve deploy --role ml_lead --by "Priya Patel" --subject "$candidate" \
  --note "retrained on January after the drift alert; canary, guarded"
step "The alert's pipeline resumes at the gates: cleared, the candidate enters the plan's canary (production is never replaced directly)" \
  "$mlplan" run --if-alerted
step "Traffic until the controller promotes the retrained model (or stops it)" \
  traffic --until promoted,rolled_back,paused,aborted
step "No skew between training and serving: each derived feature computed both ways, on the training rows and on the requests the canary logged" \
  "$mlplan" features check "$candidate"
step "The pipeline again, nothing changed: every step reused (cached), in a second or two" \
  "$mlplan" run
step "Every pipeline run: what started it, how it ended" \
  "$mlplan" pipeline runs
step "Scheduled by Airflow: the pipeline as a DAG file, one task per step, on the plan's schedule" \
  bash -c "'$mlplan' pipeline export --format airflow && sed -n '/^# -- configuration/,/^# ---/p' dags/churn_pipeline.py"
step "The pipeline item of the checklist: it ran, but no scheduler has run it yet" \
  bash -c "'$mlplan' status --json | '$python' -c 'import json, sys; (i,) = [i for i in json.load(sys.stdin)[\"items\"] if i[\"id\"] == \"deploy.pipeline\"]; print(i[\"state\"], \"-\", i[\"evidence\"]); print(\"next:\", i[\"next\"])'"
printf '\n\033[1m── SIGTERM: in-flight requests finish, the log is flushed, the server stops\033[0m\n'
kill -TERM "$server"
wait "$server" || true  # uvicorn re-raises SIGTERM after its graceful shutdown
tail -n 1 serve.log
step "Every request is in the prediction log (PII hashed); query it with SQL" \
  "$mlplan" logs query "SELECT kind, status, count(*) AS n FROM predictions GROUP BY ALL ORDER BY ALL"
step "The plan says batch: score the December export in chunks, with lineage" \
  "$mlplan" score logistic-1 data/customers_2026-12.csv scored/customers_2026-12.parquet
step "A load test of a real server against the plan's latency, QPS and memory" \
  "$mlplan" loadtest logistic-1 --seconds 3 --concurrency 4
step "The business owner signs off" \
  "$mlplan" approve buy_in --role business_owner --by "Dana Lee" \
  --note "call list pilot approved for Q1"
step "Where the project stands, item by item" \
  "$mlplan" status
step "How customers@2 was made, and what was made from it" \
  "$mlplan" lineage customers@2
step "The same lineage as OpenLineage RunEvents (first event)" \
  bash -c "'$mlplan' lineage customers@2 --format openlineage | head -n 1 | cut -c1-400"

# ── An image project: a pretrained CNN backbone read from a local file ──────────────────────
mkdir -p "$demo/digits" && cd "$demo/digits"
cp "$root/examples/digits/mlplan.yaml" mlplan.yaml
step "Digits: images and a backbone pretrained on digits 0-4 only (seeded; nothing downloaded)" \
  "$python" "$root/examples/digits/generate.py" data
step "Register the image folder and split it, stratified by digit" \
  bash -c "'$mlplan' data add digits && '$mlplan' data split digits --stratify label --seed 7"
step "The quick-and-dirty baseline: the frozen backbone with a logistic head" \
  "$mlplan" train --baseline
step "Fine-tune the backbone's last block with a new head" \
  "$mlplan" train --family cnn
step "Both against the trivial baseline and the literature" \
  "$mlplan" models compare
step "Error analysis of the fine-tuned CNN: per-class metrics, confusions, calibration" \
  "$mlplan" evaluate cnn-2

# ── A sequence project: forecasting from windows of a time-ordered column ───────────────────
mkdir -p "$demo/sunspots" && cd "$demo/sunspots"
cp "$root/examples/sunspots/mlplan.yaml" mlplan.yaml
step "Sunspots: yearly activity 1700-2008, as statsmodels ships it" \
  "$python" "$root/examples/sunspots/generate.py" data
step "Register it and split by time: the last years are the test split" \
  bash -c "'$mlplan' data add sunspots && '$mlplan' data split sunspots --time year"
step "Every family of the plan: GBT on window features (the baseline), a GRU, ridge" \
  "$mlplan" train --all
step "A seeded search of 12 trials for the GBT on the validation years" \
  "$mlplan" train --family gbt --tune 12
step "The forecasts against the training mean, on the same test years" \
  "$mlplan" models compare
step "Error analysis of the GRU: MAE per era with intervals, where the errors concentrate" \
  "$mlplan" evaluate rnn-1
cd "$demo"

# ── The dashboard, left running on the churn project ─────────────────────────────────────
uiport="$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
nohup "$mlplan" ui --port "$uiport" > ui.log 2>&1 &
ui=$!
"$python" - "$uiport" "$ui" <<'PY' || { cat ui.log; exit 1; }
import os, sys, time, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 60
while True:  # until the dashboard answers, or its process is gone
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).close()
        break
    except OSError:
        os.kill(pid, 0)
        if time.monotonic() > deadline:
            sys.exit("the dashboard did not answer in 60 s")
        time.sleep(0.2)
PY

cat <<MSG

Done. The dashboard of the churn project is running: http://127.0.0.1:$uiport/
  (mlplan ui, process $ui; stop it with: kill $ui)
Look next:
  $demo/mlplan.yaml           the plan that drove every step
  $demo/.mlplan/store.db      the store: datasets, versions, splits, runs, approvals
  $demo/.mlplan/artifacts/    content-addressed snapshots, split assignments, label batches
  $demo/labels/               the labeling batch, its instructions, and the simulated labels
  $demo/reports/logistic-1/   the evaluation report (HTML, opens offline), model card, JSON
  $demo/.mlplan/predictions/  the prediction log (JSONL segments, compacted to Parquet)
  $demo/scored/               batch predictions with row ids and model version
  $demo/digits/, $demo/sunspots/   an image project and a sequence project, each with its store
  cd $demo && $mlplan status --json    the checklist for machines
MSG
