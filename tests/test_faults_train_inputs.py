"""Issue 21, `ifcn-train`: one test per fault a hostile tester found, named by the issue's item number; each failed on
the code before the fix.

7. `--config` JSON: every value of the wrong type and every unknown key is refused, one clear line each;
15. absurd limits (`--crop 100000`) are refused before anything is written, and a failed start leaves no run folder;
16. a failed start (wrong `--shards`) leaves no empty output folder;
17. clear messages: a full disk before the first checkpoint does not advise `--resume`; `config.json` stores resolved
    shard paths so a resume works from another directory; a shard given as `--weights` is called what it is.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from ifcn.trainer.cli import main

SEMANTIC = ["--task", "semantic", "--arch", "resnet18", "--weights", "none", "--crop", "64", "--batch-size", "8",
            "--workers", "0", "--device", "cpu", "--no-progress"]


def _invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def test_fault_07_config_values_of_the_wrong_type_and_unknown_keys_are_refused_one_line_each(
        train_shards: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"shards": str(train_shards), "task": "semantic", "channels_last": "false",
                                  "epochs": "2", "batch_size": 2.5, "lr": "fast", "crop": None, "epoch": 3}))
    result = _invoke("--config", config, "--out", tmp_path / "run")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if str(config) in line]
    assert len(lines) == 6, result.output
    for expected in ("'epoch' is not a setting (did you mean 'epochs'?)", '--channels-last takes true or false',
                     '--epochs takes a whole number, got "2"', "--batch-size takes a whole number, got 2.5",
                     '--lr takes a number, got "fast"', "--crop takes a whole number, got null"):
        assert sum(expected in line for line in lines) == 1, expected
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()
