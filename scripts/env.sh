# Sourced by the scripts: create .venv and install the project (editable, with test tools) the first time.
# IFCN_VENV overrides the location. Re-runs are no-ops once the install stamp matches pyproject.toml.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${IFCN_VENV:-$root/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"
stamp="$venv/.ifcn-installed"
want="$(cat "$root/pyproject.toml" "$root/scripts/env.sh" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  python -m pip install --quiet --upgrade pip
  python -m pip install --quiet -e "$root[dev]"
  # Label Studio's own RLE decoder for the backend's contract test, kept off sys.path: the converter package ships a
  # top-level `tests` package that would shadow this project's (the test loads `brush.py` from here by its path).
  python -m pip install --quiet --no-deps --upgrade --target "$venv/opt/label-studio-converter" \
    "label-studio-converter==0.0.59"
  echo "$want" > "$stamp"
fi
cd "$root"
