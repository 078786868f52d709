"""Every dotted ``smartcrop.…`` name in the code, the benchmarks and the READMEs names something that exists.

Names in strings and prose are what a move leaves behind: an ``__import__`` in a benchmark worker, a ``monkeypatch``
target, a README pointing at a function or a module that is gone. Names that are not Python at all (topics such as
``smartcrop.jobs.v1``, file and host names, a logger) are listed in ``NOT_MODULES``; any other is checked.
"""

from __future__ import annotations

import importlib
import re

from ..conftest import REPO

PACKAGE = REPO / "services" / "smartcrop"
DOTTED = re.compile(r"\bsmartcrop(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
# second parts of dotted names that are not modules: topics, the Compose project's files and hosts, a logger
NOT_MODULES = {"jobs", "detections", "tracks", "plans", "status", "dlq", "control", "v1", "json", "mp4", "local",
               "example", "kafka", "append"}


def texts() -> list:
    return [*PACKAGE.rglob("*.py"), *(REPO / "benchmarks").glob("*.py"), *(REPO / "tests").rglob("*.py"),
            REPO / "README.md", REPO / "benchmarks" / "README.md", REPO / "deploy" / "README.md"]


def resolves(name: str) -> bool:
    """The longest importable module prefix of ``name``, then attributes for the rest."""
    parts = name.split(".")
    for cut in range(len(parts), 1, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


def test_every_dotted_name_of_the_package_resolves():
    names = {(match.group(0), path.relative_to(REPO).as_posix()) for path in texts() if "__pycache__" not in path.parts
             for match in DOTTED.finditer(path.read_text()) if match.group(0).split(".")[1] not in NOT_MODULES}
    assert len(names) > 50  # the scan sees the code map, docstrings and imports
    stale = sorted(f"{where}: {name}" for name, where in names if not resolves(name.rstrip(".")))
    assert not stale, "\n".join(stale)
