#!/usr/bin/env bash
# The main job end to end on the embedded synthetic VOC-layout data: synth -> sample -> verify/inspect -> train -> NoC.
# At most about 10 minutes on a slow 2-core machine: training stops after $DEMO_EPOCHS epochs or $DEMO_MINUTES
# minutes, whichever comes first (`--max-minutes`; a stopped run continues with `ifcn-train --out demo/run --resume`).
# Outputs in $DEMO_DIR (default: demo/).
source "$(dirname "$0")/env.sh"
demo="${DEMO_DIR:-demo}"
epochs="${DEMO_EPOCHS:-6}"
minutes="${DEMO_MINUTES:-6}"
set -x
ifcn-prep synth --out "$demo/data" --train-images 160 --val-images 40 --long-side 160 --seed 0 --overwrite
ifcn-prep sample --voc-root "$demo/data" --split train --pairs 15 --out "$demo/shards/train" --overwrite --no-progress
ifcn-prep sample --voc-root "$demo/data" --split val --pairs 1 --out "$demo/shards/val" --overwrite --no-progress
ifcn-prep verify --shards "$demo/shards/train"
ifcn-prep inspect --shards "$demo/shards/train" --out "$demo/inspect.png"
rm -rf "$demo/run" "$demo/untrained"
ifcn-train --shards "$demo/shards/train" --val-shards "$demo/shards/val" --task interactive --arch resnet18 --stride 8 \
    --weights none --epochs "$epochs" --max-minutes "$minutes" --batch-size 16 --crop 128 --workers 1 --device auto \
    --no-progress --out "$demo/run"
ifcn-train --shards "$demo/shards/train" --val-shards "$demo/shards/val" --task interactive --arch resnet18 --stride 8 \
    --weights none --epochs 0 --workers 1 --device auto --no-progress --out "$demo/untrained"
model="$demo/run/best.pt"
[ -f "$model" ] || model="$demo/run/last.pt"  # the time ran out before the first validation: the model as it stopped
ifcn-eval noc --checkpoint "$model" --shards "$demo/shards/val" --max-clicks 20 --out "$demo/noc" --overwrite \
    --label trained
ifcn-eval noc --checkpoint "$demo/untrained/best.pt" --shards "$demo/shards/val" --max-clicks 20 --out "$demo/noc-untrained" \
    --overwrite --label untrained
ifcn-eval plot --reports "$demo/noc" --reports "$demo/noc-untrained" --out "$demo/compare.png"
set +x
echo
echo "Select objects by clicking on the model just trained (then open http://127.0.0.1:8000/ in a browser):"
echo "  source $venv/bin/activate && ifcn-eval demo --checkpoint $model --images $demo/data/VOCdevkit/VOC2012/JPEGImages"
