"""Bench results: one Row per backend, as an Ultralytics-style table, JSON, CSV and a bar chart."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from segedge.bench.timing import machine_info


@dataclass
class Row:
    backend: str
    name: str = ""  # the model: an embedded name or the file's stem
    gmac: float | None = None  # multiply-accumulates per image, from the model's spec
    precision: str = ""
    device: str = ""
    input: str = ""
    batch: int = 1
    status: str = "ok"
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    fps: float | None = None
    speedup_vs_eager: float | None = None
    iou_vs_eager: float | None = None
    iou_vs_truth: float | None = None
    size_mb: float | None = None
    memory_mb: float | None = None  # peak resident memory above the level before this backend was loaded
    model: str = ""


def format_table(rows: list[Row]) -> str:
    """An Ultralytics-style table: model, GMAC, format, status, size, accuracy, latency, throughput, speedup (plain
    ASCII, so any terminal encoding prints it)."""
    name_width = max([len("Format"), *(len(row.backend) for row in rows)])  # torch-channels-last is 19 wide
    model_width = max([len("Model"), *(len(row.name) for row in rows)])
    columns = (("Model", f"<{model_width}"), ("GMAC", ">6"), ("Format", f"<{name_width}"), ("Status", "<7"),
               ("Device", "<6"), ("Size MB", ">8"), ("IoU/eager", ">9"),
               ("IoU/GT", ">7"), ("ms/img", ">8"), ("p99 ms", ">8"), ("FPS", ">7"), ("Speedup", ">8"),
               ("Mem MB", ">7"))
    header = " ".join(format(name, align) for name, align in columns)
    lines = [header, "-" * len(header)]

    def cell(value, spec):
        return format(value, spec) if value is not None else "-"

    for row in rows:
        ok = row.status == "ok"
        values = (row.name or "-", cell(row.gmac, ".3f"), row.backend, row.status.split(":")[0], row.device or "-",
                  cell(row.size_mb, ".1f"),
                  cell(row.iou_vs_eager, ".4f"), cell(row.iou_vs_truth, ".4f"),
                  cell(row.p50_ms / row.batch if ok else None, ".2f"),
                  cell(row.p99_ms / row.batch if ok else None, ".2f"), cell(row.fps, ".1f"),
                  cell(row.speedup_vs_eager, ".2f"), cell(row.memory_mb, ".0f"))
        lines.append(" ".join(format(value, align) for value, (_, align) in zip(values, columns, strict=True)))
    not_run = [f"  {row.name} {row.backend}: {row.status}" for row in rows if row.status != "ok"]
    return "\n".join(lines + (["", "Not measured:", *not_run] if not_run else []))


def write_json(rows: list[Row], path: Path, extra: dict | None = None) -> None:
    """{"machine": {...}, "rows": [...], plus `extra` (options, pipeline)}."""
    payload = {"machine": machine_info(), "rows": [asdict(r) for r in rows], **(extra or {})}
    Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")


def write_csv(rows: list[Row], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)


def write_plot(rows: list[Row], path: Path, title: str = "segedge bench") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in rows if r.status == "ok"]
    fig, axis = plt.subplots(figsize=(7, 3.5))
    labels = [f"{r.name} {r.backend} ({r.device})".strip() for r in measured]
    bars = axis.barh(labels, [r.p50_ms / r.batch for r in measured], color="#4c72b0")
    for bar, row in zip(bars, measured, strict=True):
        label = f"{row.p50_ms / row.batch:.1f} ms" + (f"  x{row.speedup_vs_eager}" if row.speedup_vs_eager else "")
        axis.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, " " + label, va="center")
    axis.set_xlabel("median latency per image (ms), lower is better")
    axis.set_title(title)
    axis.invert_yaxis()
    axis.margins(x=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
