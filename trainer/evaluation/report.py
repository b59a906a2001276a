"""NoC reports: the published-layout table, `summary.json`, per-object `objects.jsonl`, the mIoU@k curves, overlays.

A report folder is self-describing (its summary holds every protocol setting, the model config and the manifest id),
so `ifcn-eval plot` can overlay runs made at different times. A run over several datasets writes one such folder
per dataset (`OUT/NAME/`) plus a combined `OUT/summary.json`, the table `OUT/noc_table.md` and one plot with a curve
per dataset.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ifcn.io import atomic_write_bytes
from ifcn.plotting import new_figure, save_png
from ifcn.trainer.evaluation.noc import NocSummary, ObjectLog

SUMMARY_NAME = "summary.json"
OBJECTS_NAME = "objects.jsonl"
CURVE_NAME = "miou_curve.png"
TABLE_NAME = "noc_table.md"
#: The files of a report folder (a run over several datasets adds a sub-folder per dataset).
REPORT_FILES = (SUMMARY_NAME, OBJECTS_NAME, CURVE_NAME, TABLE_NAME)
#: Click counts whose mIoU summary.json lists (those up to max_clicks); the table shows TABLE_MIOU_AT.
MIOU_AT = (1, 2, 3, 5, 10, 20)
TABLE_MIOU_AT = (1, 5)


def _pct(t: float) -> str:
    return f"{t * 100:g}"


def summary_figures(summary: NocSummary) -> dict[str, Any]:
    """The figures of `summary` as JSON-ready values (threshold keys as percent strings, e.g. "85")."""
    return {
        "num_objects": summary.num_objects,
        "noc": {_pct(t): v for t, v in summary.noc.items()},
        "nof": {_pct(t): v for t, v in summary.nof.items()},
        "never_reached": {_pct(t): v for t, v in summary.never_reached.items()},
        "miou_at": {str(k): summary.miou_curve[k - 1] for k in MIOU_AT if k <= len(summary.miou_curve)},
        "miou_curve": list(summary.miou_curve),
        "seconds_per_click": summary.seconds_per_click,
    }


def noc_table(summaries: Mapping[str, Mapping[str, Any]]) -> str:
    """The published layout (RITM and successors) as a Markdown table: a row per dataset with NoC@t, NoF@t (RITM's
    count), the objects that never reach t, mIoU@1 and @5 and seconds per click; then a legend line."""
    first = next(iter(summaries.values()))
    targets = list(first["noc"])
    clicks = [str(k) for k in TABLE_MIOU_AT if str(k) in first["miou_at"]]
    header = ["dataset", "objects", *(f"NoC@{t}" for t in targets), *(f"NoF@{t}" for t in targets),
              *(f"never@{t}" for t in targets), *(f"mIoU@{k}" for k in clicks), "s/click"]
    rows = [header, ["---"] + ["---:"] * (len(header) - 1)]
    for name, s in summaries.items():
        rows.append([name, str(s["num_objects"]), *(f"{s['noc'][t]:.2f}" for t in targets),
                     *(str(s["nof"][t]) for t in targets), *(str(s["never_reached"][t]) for t in targets),
                     *(f"{100 * s['miou_at'][k]:.2f}" for k in clicks), f"{s['seconds_per_click']:.4f}"])
    max_clicks = first["settings"]["max_clicks"]
    legend = (f"NoF@t: objects whose NoC@t is {max_clicks} (the most clicks), those reaching t only at click "
              f"{max_clicks} included, as RITM counts; never@t: objects that never reach t.")
    return "\n".join("| " + " | ".join(row) + " |" for row in rows) + "\n\n" + legend + "\n"


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
    _write_json(out / SUMMARY_NAME, summary)


def write_table(out: Path, table: str) -> None:
    """The printed table as `noc_table.md`."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / TABLE_NAME, table.encode())


def write_combined(out: Path, combined: dict[str, Any]) -> None:
    """The files of a run over several datasets beside their folders: summary.json (every dataset's summary under
    `datasets`, their order under `dataset_order`), noc_table.md and miou_curve.png with one curve per dataset."""
    out = Path(out)
    write_table(out, combined["table"])
    plot_curves(_curves(combined), out / CURVE_NAME, title=f"mIoU vs clicks: {combined['label']}")
    _write_json(out / SUMMARY_NAME, combined)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def _curves(summary: Mapping[str, Any], label: str | None = None) -> list[tuple[str, Sequence[float]]]:
    """(label, mIoU curve) of a report: one curve, or one per dataset of a combined report."""
    if "datasets" in summary:
        prefix = f"{label}: " if label else ""
        return [(prefix + name, summary["datasets"][name]["miou_curve"]) for name in summary["dataset_order"]]
    return [(label or summary.get("label", "run"), summary["miou_curve"])]


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
    plot_curves([c for n, s in zip(names, summaries, strict=True) for c in _curves(s, n)], Path(png))
