#!/usr/bin/env bash
# The field's NoC table over all six dataset layouts in one `ifcn-eval noc` call, for the model `scripts/demo.sh`
# trained (run that first). Each layout gets unseen synthetic images (seed 1; the demo trained on seed 0), sampled
# and verified like real data. Usage: bash bench/noc_datasets.sh [CHECKPOINT]  (outputs in $DEMO_DIR/datasets/)
source "$(dirname "$0")/../scripts/env.sh"
demo="${DEMO_DIR:-demo}"
checkpoint="${1:-$demo/run/best.pt}"
images="${IMAGES_PER_LAYOUT:-20}"
data="$demo/datasets/data"
shards="$demo/datasets/shards"
set -x
datasets=()
for layout in voc sbd grabcut berkeley davis coco; do
  ifcn-prep synth "$data" --layout "$layout" --train-images 0 --val-images "$images" --long-side 160 --seed 1 \
      --overwrite
  case "$layout" in
    voc) where=(--root "$data/VOCdevkit/VOC2012" --split val) ;;
    sbd) where=(--root "$data/benchmark_RELEASE/dataset" --split val) ;;
    grabcut) where=(--root "$data/GrabCut") ;;
    berkeley) where=(--root "$data/Berkeley") ;;
    davis) where=(--root "$data/DAVIS") ;;
    coco) where=(--coco-images "$data/COCO/val2017" --coco-json "$data/COCO/annotations/instances_val2017.json") ;;
  esac
  ifcn-prep sample --source "$layout" "${where[@]}" --pairs 1 --out "$shards/$layout" --overwrite --no-progress
  ifcn-prep verify "$shards/$layout"
  datasets+=(--shards "$shards/$layout")
done
ifcn-eval noc --checkpoint "$checkpoint" "${datasets[@]}" --max-clicks 20 --no-progress --out "$demo/datasets/noc"
