"""The speed baseline: a plain static centre-crop transcode, what a transcoder without smart crop does.

It uses smartcrop's own encoder (:func:`smartcrop.media.render.render`) with one static window, so the encoding code,
x264 preset (``veryfast``), CRF (23) and AAC audio are identical to ``smartcrop run``; only detection, tracking and
planning are missing. Run as its own process, like ``smartcrop run``:

    .venv/bin/python -m benchmarks.baseline INPUT OUT.mp4 [--aspect-ratio 9:16] [--preset veryfast]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def centre_crop_transcode(source: Path, out: Path, *, aspect_ratio: str = "9:16", preset: str = "veryfast") -> Path:
    from smartcrop.core.job import crop_size, job_from_options
    from smartcrop.media.probe import probe
    from smartcrop.media.render import render

    media = probe(source)
    fmt = job_from_options(str(source), aspect_ratio=aspect_ratio, preset=preset, smart_crop=False).formats[0]
    width, height = crop_size(media.display_width, media.display_height, fmt.aspect_ratio)
    window = np.array([[(media.display_width - width) / 2, (media.display_height - height) / 2, width, height]], float)
    (entry,) = render(source, media, window, fmt, out)  # one row: every frame uses it
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baseline", description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--aspect-ratio", default="9:16")
    parser.add_argument("--preset", default="veryfast")
    args = parser.parse_args(argv)
    print(centre_crop_transcode(args.input, args.output, aspect_ratio=args.aspect_ratio, preset=args.preset))
    return 0


if __name__ == "__main__":
    sys.exit(main())
