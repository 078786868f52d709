"""The crop plan of a real clip as ``smartcrop run --plan-json`` writes it, and what a centre crop would show.

A run costs 5-40 s on two cores, so each (clip, method, mode, ratio) runs once per session and every test that
judges it reads the same plan.
"""

from __future__ import annotations

import functools
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smartcrop.cli import main


@dataclass(frozen=True)
class Plan:
    width: int
    height: int
    t: np.ndarray  # (F,) seconds
    windows: np.ndarray  # (F, 4) x, y, w, h in display pixels

    def centre_crop(self) -> np.ndarray:
        """The windows a plain centre crop of the same size would use (what ``--no-smart-crop`` plans)."""
        w, h = self.windows[0, 2], self.windows[0, 3]
        centre = [(self.width - w) / 2, (self.height - h) / 2, w, h]
        return np.tile(np.asarray(centre, float), (len(self.t), 1))


@functools.cache
def plan(clip: Path, method: str, *, mode: str = "balanced", ratio: str = "9:16") -> Plan:
    """Run the whole pipeline on ``clip`` (render included, as ``smartcrop run`` does) and read back its plan."""
    with tempfile.TemporaryDirectory(prefix="smartcrop-e2e-") as tmp:
        out, plan_json = Path(tmp) / "out.mp4", Path(tmp) / "plan.json"
        code = main(["run", str(clip), "-o", str(out), "--plan-json", str(plan_json), "--method", method,
                     "--mode", mode, "--aspect-ratio", ratio, "--quiet"])
        assert code == 0, f"smartcrop run failed on {clip.name} ({method}, {mode}, {ratio})"
        document = json.loads(plan_json.read_text())
    frames = document["frames"]
    return Plan(int(document["width"]), int(document["height"]), np.array([f["t"] for f in frames], float),
                np.array([[f["x"], f["y"], f["w"], f["h"]] for f in frames], float))
