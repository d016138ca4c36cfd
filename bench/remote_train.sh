#!/usr/bin/env bash
# A work copy's train stage on a machine that has Python and JAX but not DVC (docs/accelerators.md): its
# prepare, noise and split stages from the image folders that its params name, then `stages/train.py train`,
# in a scratch folder. Into OUT go what the pipeline here takes back: models/model.keras, the run's
# checkpoints/train/state.json and time.json, the log, and the split's checksums to compare with the split made here. A file
# over 15 MB comes in parts (a device's limit on returned files): `cat NAME.part-* > NAME` joins them.
#
#   bench/remote_train.sh PARAMS OUT [MINUTES]
#
# MINUTES (default 8) bounds the training; a run stopped there leaves its best epoch so far as
# best-unfinished.keras, which is not the stage's output (its state says complete: false).
set -euo pipefail
params=$(realpath "$1") out=$(realpath "$2") minutes=${3:-8}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
work=$(mktemp -d)
cp "$params" "$work/params.yaml"
ln -s "$root/src" "$work/src"
ln -s "$root/stages" "$work/stages"
cd "$work"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 stages/prepare.py
python3 stages/noise.py
python3 stages/split.py
(cd data/split && find train val -type f | sort | xargs md5sum) > "$out/split.md5"
status=0
timeout "$((minutes * 60))" python3 stages/train.py train 2>&1 | tee "$out/train.log" || status=$?
cp checkpoints/train/state.json "$out/state.json" 2>/dev/null || true  # none if training failed before its first epoch
cp checkpoints/train/time.json "$out/time.json" 2>/dev/null || true
if [ -f models/model.keras ]; then
  cp models/model.keras "$out/model.keras"
else
  cp checkpoints/train/best.keras "$out/best-unfinished.keras" 2>/dev/null || true
fi
# files over 15 MB (a .keras with its optimizer state) in parts; `cat NAME.part-* > NAME` joins them
for file in "$out"/*.keras; do
  if [ -f "$file" ] && [ "$(stat -c %s "$file")" -gt 15000000 ]; then
    split -b 15000000 "$file" "$file.part-" && rm "$file"
  fi
done
exit "$status"
