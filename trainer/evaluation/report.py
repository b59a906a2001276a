"""NoC reports: the terminal table, `summary.json`, per-object `objects.jsonl`, the mIoU@k curve, and overlays.

A report folder is self-describing (its summary holds every protocol setting, the model config and the manifest id),
so `ifcn-eval plot` can overlay runs made at different times.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ifcn.io import atomic_write_bytes
from ifcn.plotting import new_figure, save_png
from ifcn.trainer.evaluation.noc import NocSummary, ObjectLog

SUMMARY_NAME = "summary.json"
OBJECTS_NAME = "objects.jsonl"
CURVE_NAME = "miou_curve.png"
#: Click counts shown in the table (those up to max_clicks).
TABLE_CLICKS = (1, 2, 3, 5, 10, 20)


def _pct(t: float) -> str:
    return f"{t * 100:g}"


def summary_figures(summary: NocSummary) -> dict[str, Any]:
    """The figures of `summary` as JSON-ready values (threshold keys as percent strings, e.g. "85")."""
    return {
        "num_objects": summary.num_objects,
        "noc": {_pct(t): v for t, v in summary.noc.items()},
        "nof": {_pct(t): v for t, v in summary.nof.items()},
        "miou_at": {str(k): summary.miou_curve[k - 1] for k in TABLE_CLICKS if k <= len(summary.miou_curve)},
        "miou_curve": list(summary.miou_curve),
        "seconds_per_click": summary.seconds_per_click,
    }


def format_table(summary: dict[str, Any]) -> str:
    """The terminal table of a summary dict (as written to summary.json)."""
    lines = [f"{'objects':<22}{summary['num_objects']:>10d}"]
    for t, noc in summary["noc"].items():
        lines.append(f"{'NoC@' + t:<22}{noc:>10.2f}")
    for t, nof in summary["nof"].items():
        lines.append(f"{'NoF@' + t:<22}{nof:>10d}")
    for k, miou in summary["miou_at"].items():
        lines.append(f"{'mIoU@' + k:<22}{miou * 100:>9.2f}%")
    lines.append(f"{'seconds per click':<22}{summary['seconds_per_click']:>10.4f}")
    width = max(len(line) for line in lines)
    return "\n".join(["-" * width, *lines, "-" * width])


def plot_curves(curves: Sequence[tuple[str, Sequence[float]]], path: Path, title: str = "mIoU vs clicks") -> None:
    """Plot labelled mIoU@k curves (k = 1..len) into one PNG."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = new_figure()
    for label, curve in curves:
        ax.plot(range(1, len(curve) + 1), [100 * v for v in curve], marker="o", markersize=3, label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("number of clicks")
    ax.set_ylabel("mIoU (%)")
    ax.set_ylim(0, 100)
    ax.grid(True, alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    save_png(fig, path)


def write_report(out: Path, summary: dict[str, Any], logs: Sequence[ObjectLog]) -> None:
    """Write summary.json, objects.jsonl (reading order) and miou_curve.png into `out` (each file atomically)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(log.to_json(), separators=(",", ":")) for log in sorted(logs, key=lambda log: log.index)]
    atomic_write_bytes(out / OBJECTS_NAME, ("\n".join(lines) + "\n").encode())
    plot_curves([(summary.get("label", out.name), summary["miou_curve"])], out / CURVE_NAME)
    atomic_write_bytes(out / SUMMARY_NAME, (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode())


def load_summary(report_dir: Path) -> dict[str, Any]:
    """Read a report folder's summary.json, with an error that names the folder."""
    path = Path(report_dir) / SUMMARY_NAME
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{report_dir}: no {SUMMARY_NAME}; pass folders written by `ifcn-eval noc --out`") \
            from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def plot_reports(report_dirs: Sequence[Path], png: Path, labels: Sequence[str] = ()) -> None:
    """Overlay the mIoU curves of several report folders; labels default to each report's label."""
    if labels and len(labels) != len(report_dirs):
        raise ValueError(f"got {len(labels)} --label value(s) for {len(report_dirs)} report folder(s); give one each "
                         "or none")
    summaries = [load_summary(Path(d)) for d in report_dirs]
    names = list(labels) or [s.get("label", Path(d).name) for s, d in zip(summaries, report_dirs, strict=True)]
    plot_curves([(n, s["miou_curve"]) for n, s in zip(names, summaries, strict=True)], Path(png))
