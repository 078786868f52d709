"""Markdown tables and the generated sections of ``benchmarks/README.md``.

Each part owns the text between ``<!-- bench:PART:begin -->`` and ``<!-- bench:PART:end -->``; running one part
replaces only its own section, so parts can be re-run separately.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from benchmarks.common import README, RESULTS, machine_line


def pct(share: float, digits: int = 1) -> str:
    """A share in [0, 1] as a percentage; ``-`` for NaN."""
    return "-" if share is None or (isinstance(share, float) and math.isnan(share)) else f"{100 * share:.{digits}f}"


def num(value: float, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub markdown table; ``align`` is one letter per column (l, r, c), default: first left, rest right."""
    align = align or "l" + "r" * (len(headers) - 1)
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    escape = lambda cell: str(cell).replace("|", "\\|")  # noqa: E731 - a literal | would end the cell
    lines = ["| " + " | ".join(map(escape, headers)) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(map(escape, row)) + " |")
    return "\n".join(lines)


def command_line() -> str:
    """The command that is running, as one would type it from the repository root."""
    return ".venv/bin/python -m benchmarks.run " + shlex.join(sys.argv[1:]) if sys.argv[1:] else \
        ".venv/bin/python -m benchmarks.run   # = make bench"


def header(title: str, info: dict[str, Any], model: str, seconds: float) -> str:
    return "\n".join([
        f"### {title}",
        "",
        f"- command: `{command_line()}`",
        f"- machine: {machine_line(info)}",
        f"- detector model: `{Path(model).name}`; run {time.strftime('%Y-%m-%d %H:%M %Z')}; this part took "
        f"{seconds / 60:.1f} min",
        "",
    ])


def update_readme(part: str, body: str, path: Path = README) -> None:
    begin, end = f"<!-- bench:{part}:begin -->", f"<!-- bench:{part}:end -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _plain(value.item())
    if isinstance(value, Path):
        return str(value)
    return value


def save_json(part: str, payload: Any) -> Path:
    """Raw results next to the README (``benchmarks/results/PART.json``), for comparisons between runs."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    file = RESULTS / f"{part}.json"
    file.write_text(json.dumps(_plain(payload), indent=1) + "\n")
    return file
