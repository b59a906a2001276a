"""The one command-line dialect of `ifcn-prep`, `ifcn-train` and `ifcn-eval` (`ifcn.cli_options`): shared flags with one
meaning, old spellings working for one release with a deprecation line, plain progress lines off a terminal, and one
error mapping (a full disk included) as one line with exit status 1."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from ifcn.cli_options import MAX_SIDE, progress
from ifcn.disk import DiskFullError
from ifcn.pipeline.prep_cli import main as prep_main
from ifcn.trainer.evaluation.eval_cli import main as eval_main
from ifcn.trainer.train_cli import main as train_main
from ifcn.trainer.train_config import TrainConfig

TOOLS = {"ifcn-prep": prep_main, "ifcn-train": train_main, "ifcn-eval": eval_main}


def _options(flag: str) -> list[click.Option]:
    """Every visible option spelled `flag` in the three tools."""
    found = []
    for tool in TOOLS.values():
        commands = tool.commands.values() if isinstance(tool, click.Group) else [tool]
        found += [p for c in commands for p in c.params
                  if isinstance(p, click.Option) and not p.hidden and flag in (*p.opts, *p.secondary_opts)]
    return found


def test_on_error_has_one_default_and_device_takes_any_torch_device_string() -> None:
    on_error = _options("--on-error")
    assert len(on_error) >= 2 and {o.default for o in on_error} == {"fail"}
    devices = _options("--device")
    defaults = {o.default if o.default is not None else TrainConfig.device for o in devices}  # train: its config's
    assert len(devices) >= 8 and defaults == {"auto"}
    assert not any(isinstance(o.type, click.Choice) for o in devices)  # cuda:1, mps: no fixed list


def test_max_side_has_one_default_and_one_meaning_and_infer_side_still_works() -> None:
    max_side = _options("--max-side")
    assert len(max_side) == 4 and {o.default for o in max_side} == {MAX_SIDE}  # predict, demo, annotate, backend
    annotate = eval_main.commands["annotate"]
    old = next(p for p in annotate.params if "--infer-side" in p.opts)
    assert old.hidden and old.default is None


def test_the_web_tools_share_host_port_allowed_host_threshold_and_zoom_in() -> None:
    """demo, annotate and the Label Studio backend take their server flags from one place: one help text each, and
    `noc` keeps its own defaults (threshold 0.49 as RITM, zoom-in off) under the same meaning."""
    for flag, count in (("--host", 3), ("--port", 3), ("--allowed-host", 3), ("--threshold", 4), ("--zoom-in", 3)):
        found = _options(flag)
        assert len(found) == count, flag
        web = [o for o in found if o.default not in (0.49, 0)]
        assert len({o.help for o in web}) == 1, flag
    assert {o.default for o in _options("--port")} == {8000, 9090}
    noc = {p.name: p for p in eval_main.commands["noc"].params}
    assert noc["threshold"].default == 0.49 and noc["zoom_in"].default == 0
    assert "0.49 as RITM" in noc["threshold"].help and "400 as RITM" in noc["zoom_in"].help


def test_bad_web_settings_are_refused_with_the_flag_named() -> None:
    from ifcn.trainer.annotate.annotate_app import AnnotateSettings
    from ifcn.trainer.demo.demo_app import DemoSettings

    for settings in (AnnotateSettings, DemoSettings):
        with pytest.raises(ValueError, match="--threshold"):
            settings(threshold=1.5)
        with pytest.raises(ValueError, match="--zoom-in"):
            settings(zoom_in=8)
        assert settings(zoom_in=0).zoom is None
        zoom = settings(zoom_in=300).zoom
        assert zoom is not None and (zoom.target, zoom.whole_side) == (300, 600)


def test_old_positional_inputs_are_left_out_of_the_usage_lines() -> None:
    for tool, command, hidden in [(prep_main, "verify", "SHARDS"), (prep_main, "synth", "OUT"),
                                  (eval_main, "plot", "REPORTS")]:
        usage = CliRunner().invoke(tool, [command, "--help"]).output.splitlines()[0]
        assert usage.endswith(f"{command} [OPTIONS]") and hidden not in usage, usage


def test_workers_counts_processes_and_threads_are_threads() -> None:
    eval_noc = eval_main.commands["noc"]
    assert "--threads" in {o for p in eval_noc.params for o in p.opts}
    visible = [c.name for c in eval_main.commands.values() for p in c.params
               if "--workers" in getattr(p, "opts", ()) and not getattr(p, "hidden", False)]
    assert visible == []


@pytest.fixture
def noc_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """`ifcn-eval noc` with its typed function replaced: records the keyword arguments it was called with."""
    calls: list[dict[str, Any]] = []

    def fake_run_noc(checkpoint: Any, shards: Any, settings: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs)
        return {"label": "fake", "table": "table", "datasets": {}}

    monkeypatch.setattr("ifcn.trainer.evaluation.checkpoint_eval.run_noc", fake_run_noc)
    return calls


def test_noc_workers_still_works_for_one_release_with_a_deprecation_line(tmp_path: Path,
                                                                          noc_calls: list[dict[str, Any]]) -> None:
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(b"")
    base = ["noc", "--checkpoint", str(checkpoint), "--shards", str(tmp_path)]
    old = CliRunner().invoke(eval_main, [*base, "--workers", "3"])
    assert old.exit_code == 0, old.output
    assert noc_calls[-1]["workers"] == 3
    assert "Deprecated: --workers is --threads now" in old.stderr
    new = CliRunner().invoke(eval_main, [*base, "--threads", "2"])
    assert new.exit_code == 0 and noc_calls[-1]["workers"] == 2 and "Deprecated" not in new.stderr
    both = CliRunner().invoke(eval_main, [*base, "--threads", "2", "--workers", "5"])
    assert both.exit_code == 0 and noc_calls[-1]["workers"] == 2  # the new spelling wins


@pytest.mark.parametrize("error", [DiskFullError("/reports", 10**9, "free some space, then rerun"),
                                   OSError(errno.ENOSPC, "No space left on device", "/reports/summary.json")])
def test_a_full_disk_in_ifcn_eval_is_one_line_and_exit_status_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 error: OSError) -> None:
    def full(*args: Any, **kwargs: Any) -> None:
        raise error

    monkeypatch.setattr("ifcn.trainer.evaluation.checkpoint_eval.run_noc", full)
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(b"")
    result = CliRunner().invoke(eval_main, ["noc", "--checkpoint", str(checkpoint), "--shards", str(tmp_path),
                                            "--out", str(tmp_path / "reports")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and result.exception is not None
    assert result.stderr.count("\n") == 1 and "no space left on device" in result.stderr.lower()


def test_a_full_disk_in_ifcn_prep_is_the_same_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.png"))

    monkeypatch.setattr("ifcn.pipeline.preview.inspect_output", full)
    result = CliRunner().invoke(prep_main, ["inspect", "--shards", str(tmp_path), "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "No space left" in result.stderr


def test_positional_inputs_and_png_work_for_one_release(train_shards: Path, tmp_path: Path) -> None:
    new = CliRunner().invoke(prep_main, ["verify", "--shards", str(train_shards)])
    assert new.exit_code == 0 and "Deprecated" not in new.stderr, new.output
    old = CliRunner().invoke(prep_main, ["verify", str(train_shards)])
    assert old.exit_code == 0 and new.stdout == old.stdout
    assert "Deprecated: the positional SHARDS is --shards SHARDS now" in old.stderr
    png = tmp_path / "old.png"
    drawn = CliRunner().invoke(prep_main, ["inspect", str(train_shards), "--png", str(png)])
    assert drawn.exit_code == 0 and png.is_file(), drawn.output
    assert drawn.stderr.count("Deprecated") == 2  # the positional SHARDS and --png
    missing = CliRunner().invoke(prep_main, ["verify"])
    assert missing.exit_code == 2 and "--shards" in missing.output


def test_progress_off_a_terminal_is_plain_lines_with_a_total(capsys: pytest.CaptureFixture[str]) -> None:
    assert list(progress(range(20), total=20, desc="val", unit="objects")) == list(range(20))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "val: 2/20 objects" and lines[-1] == "val: 20/20 objects, done" and len(lines) == 10
