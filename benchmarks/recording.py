"""What every benchmark result records beside its numbers: the load it ran under, and one JSON + Markdown pair."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from segedge.cpu import cpu_slug

RESULTS = Path(__file__).resolve().parent / "results"


def load_average() -> list[float]:
    """1-, 5- and 15-minute load averages: on a shared machine, how far absolute timings can be trusted."""
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def result_path(name: str) -> Path:
    """benchmarks/results/NAME_<cpu model and ISA flags>.json, so two machines' numbers never overwrite each other."""
    return RESULTS / f"{name}_{cpu_slug()}.json"


def write_result(out: Path, result: dict, markdown: Callable[[dict], str]) -> None:
    """OUT.json with the result, OUT.md with its table (also printed)."""
    out.write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    out.with_suffix(".md").write_text(table)
    print(table)


def print_json(payload: Any, out: Path | None) -> None:
    """Print the result as JSON, and write it to OUT when given."""
    text = json.dumps(payload, indent=2)
    print(text)
    if out:
        out.write_text(text + "\n")
