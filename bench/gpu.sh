#!/usr/bin/env bash
# Every GPU figure in one command (issue 11): looks for a GPU, installs the project into a fresh venv, then runs each
# step under its own time limit (the limits add up to 8 minutes), writes bench/results-gpu.json and a Markdown
# report (both also under $OUT when set) and prints the report. Run from anywhere: `bash bench/gpu.sh`.
#
#   bash bench/gpu.sh                 # on the GPU machine
#   bash bench/gpu.sh --fetch-wheels  # beforehand, on a machine with PyPI: the wheels an offline GPU machine lacks
#
# Without a GPU (no working `nvidia-smi`) it installs nothing, prints what it would run and exits 0.
# IFCN_GPU_TINY=1 gives the measured steps tiny sizes: a check of the whole script's plumbing, not figures.
# The install: a fresh venv that also sees the interpreter's own packages (torch and CUDA come with the GPU
# machine's image), then the project's own install step, `pip install -e .`, offline from .wheels/ when that
# folder exists (IFCN_WHEELS overrides it).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
wheels="${IFCN_WHEELS:-$root/.wheels}"
python="${PYTHON:-python3}"

# What a GPU machine's image lacks of the project's dependencies (webdataset, dask[distributed], jsonschema,
# pycocotools, simplejpeg, the web stack fastapi/uvicorn/python-multipart/fastapi-offline), and the build backend of
# `pip install -e .`; everything else (torch, numpy, OpenCV, ...) is there. Their own dependencies are resolved by the
# download (about 27 MB); the ones the image already has are left alone by the install.
# The wheels are for the GPU machine's Python (3.12, x86-64 Linux).
wheel_names=(webdataset "dask[distributed]" jsonschema pycocotools simplejpeg fastapi uvicorn python-multipart
             fastapi-offline "setuptools>=77" wheel packaging)

if [ "${1:-}" = "--fetch-wheels" ]; then
  mkdir -p "$wheels"
  "$python" -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$wheels" "${wheel_names[@]}" || exit 1
  echo "wheels in $wheels:"; ls "$wheels"
  exit 0
fi

if [ "${1:-}" = "--install" ]; then  # internal: install into the venv $2 (run under a time limit)
  venv="$2"
  "$python" -m venv "$venv" || exit 1
  purelib="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  # Site folders added as such (not as plain paths), so that the .pth files inside them are processed too.
  "$python" -c 'import site; print("\n".join(f"import site; site.addsitedir({d!r})" for d in site.getsitepackages()))' \
    > "$purelib/gpu-machine-packages.pth"
  offline=()
  if [ -d "$wheels" ]; then offline=(--no-index --find-links "$wheels"); fi
  # The build backend goes into the venv first and the build runs there: an isolated build environment would still
  # see an older setuptools of the interpreter's packages before its own.
  "$venv/bin/python" -m pip install -q "${offline[@]}" "setuptools>=77" wheel || exit 1
  "$venv/bin/python" -m pip install -q "${offline[@]}" --no-build-isolation -e "$root"
  exit $?
fi

demo_cmd="python bench/bench_demo.py --device cuda"
# name|seconds|command  (the limits, with the install's and the report's, add up to 580 s: under the device tool's
# 10 minutes per command; the real step runs only when packed real-photo shards came along, see bench/real_recipe.py)
steps=(
  "cuda-tests|90|python -m pytest -m cuda -q -p no:cacheprovider"
  "train|60|python -m bench.gpu train"
  "iterative|20|python -m bench.gpu iterative"
  "compile|90|python -m bench.gpu compile"
  "loader|40|python -m bench.gpu loader"
  "maps|20|python -m bench.gpu maps"
  "noc|55|python -m bench.gpu noc"
  "demo|30|$demo_cmd"
  "real|110|python -m bench.gpu real"
)
install_limit=55
report_limit=10

print_plan() {
  printf '  %-10s at most %3s s  %s\n' install "$install_limit" \
    "$python -m venv VENV (+ $python's own packages); pip install -e . (offline from $wheels when present)"
  for step in "${steps[@]}"; do
    IFS='|' read -r name limit cmd <<< "$step"
    note=""
    if [ "$name" = demo ] && [ ! -f bench/bench_demo.py ]; then note="  (skipped: bench/bench_demo.py absent)"; fi
    printf '  %-10s at most %3s s  %s%s\n' "$name" "$limit" "$cmd" "$note"
  done
  printf '  %-10s at most %3s s  %s\n' report "$report_limit" \
    "python -m bench.gpu report WORK  -> bench/results-gpu.json, \$OUT/results-gpu.{json,md}"
}

if ! command -v nvidia-smi > /dev/null 2>&1 || ! nvidia-smi -L > /dev/null 2>&1; then
  echo "bench/gpu.sh: no GPU found (nvidia-smi missing or failing): nothing installed, nothing run."
  echo "On a machine with a GPU it would run, each step under its time limit:"
  print_plan
  exit 0
fi

start=$SECONDS
nvidia-smi -L
work="$(mktemp -d)"
venv="$work/venv"
echo "== install ($install_limit s at most) into $venv"
if ! timeout -k 5 "$install_limit" bash "$root/bench/gpu.sh" --install "$venv"; then
  echo "bench/gpu.sh: the install failed; offline, first run 'bash bench/gpu.sh --fetch-wheels' on a machine with" \
       "PyPI and bring .wheels/ along (the device tool: carry [\".wheels\"])" >&2
  exit 1
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"
export PYTHONUNBUFFERED=1

for step in "${steps[@]}"; do
  IFS='|' read -r name limit cmd <<< "$step"
  if [ "$name" = demo ] && [ ! -f bench/bench_demo.py ]; then continue; fi
  echo "== $name ($limit s at most): $cmd"
  echo "$cmd" > "$work/$name.cmd"
  run="$cmd"
  case "$cmd" in "python -m bench.gpu "*) run="$cmd --json $work/$name.json${IFCN_GPU_TINY:+ --tiny}" ;; esac
  timeout -k 5 "$limit" bash -c "$run" 2>&1 | tee "$work/$name.txt"
  echo "${PIPESTATUS[0]}" > "$work/$name.rc"
done

echo "== report"
timeout -k 5 "$report_limit" python -m bench.gpu report "$work"
echo "bench/gpu.sh: done in $((SECONDS - start)) s; step outputs in $work"
