"""The dependency rule of the README's module map, checked on the source by parsing every import (function-level
ones included): a layer imports only itself and the layers below it.

    shared `ifcn` (shard contract, helpers) < trainer.models < trainer.core < trainer.data < trainer.inference
    < trainer.evaluation < trainer.web < trainer.demo
    < the tools (training in `trainer/`'s root, the `ifcn-eval` command modules)

`pipeline` imports the shared modules only, never `trainer`.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Source folder -> installed package.
PACKAGES = {"ifcn": "ifcn", "pipeline": "ifcn.pipeline", "trainer": "ifcn.trainer"}
LAYERS = ("shared", "models", "core", "data", "inference", "evaluation", "web", "demo", "tools")
#: The `ifcn-eval` command modules: they wire every subcommand, so they sit with the tools.
COMMAND_MODULES = {"ifcn.trainer.evaluation.eval_cli", "ifcn.trainer.evaluation.model_use_cli"}
#: `from ifcn import Predictor` loads the inference API on first use (`ifcn/__init__.py`'s lazy attribute).
ALLOWED = {("ifcn", "ifcn.trainer.inference")}


def module_name(path: Path) -> str:
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    parts = [PACKAGES[folder], *rest]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    """The layer of an `ifcn` module (`pipeline` for the data pipeline)."""
    if module.startswith("ifcn.pipeline"):
        return "pipeline"
    if not module.startswith("ifcn.trainer"):
        return "shared"
    if module in COMMAND_MODULES or module == "ifcn.trainer":
        return "tools"
    sub = module.split(".")[2]
    return sub if sub in LAYERS else "tools"


def imports(path: Path) -> set[str]:
    """Every `ifcn...` module the file imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {m for m in found if m == "ifcn" or m.startswith("ifcn.")}


def sources() -> list[Path]:
    return sorted(p for folder in PACKAGES for p in (ROOT / folder).rglob("*.py"))


def violations() -> list[str]:
    out = []
    for path in sources():
        source = module_name(path)
        mine = layer(source)
        for target in sorted(imports(path)):
            theirs = layer(target)
            if (source, target) in ALLOWED:
                continue
            if mine == "pipeline" or theirs == "pipeline":
                ok = theirs in ("shared", "pipeline") and (mine == "pipeline" or theirs != "pipeline")
            elif mine == "shared":
                ok = theirs == "shared"
            else:
                ok = LAYERS.index(theirs) <= LAYERS.index(mine)
            if not ok:
                out.append(f"{path.relative_to(ROOT)} ({mine}) imports {target} ({theirs})")
    return out


def test_the_layers_are_known_and_the_walk_sees_every_package() -> None:
    names = {module_name(p) for p in sources()}
    assert {"ifcn.trainer.core.clicks", "ifcn.pipeline.click_sampling", "ifcn.shards.reader",
            "ifcn.trainer.train"} <= names
    assert layer("ifcn.trainer.core.inputs") == "core" and layer("ifcn.trainer.train") == "tools"
    assert layer("ifcn.trainer.evaluation.eval_cli") == "tools" and layer("ifcn.shards") == "shared"


def test_no_module_imports_up_and_the_pipeline_never_imports_the_trainer() -> None:
    assert violations() == []
