"""The subject of each shot as a person would choose it, labelled by eye, and how much of it a path keeps in view.

Part A's primary metric scores the largest person the detector finds on each reference frame. That proxy flips
between people of similar size from one frame to the next, and it follows the detector's misses, so it cannot say
whether a planner chose *the subject*. These labels can: for every labelled stretch of a clip in
``../shared/media`` they name the person (or the people, any of whom would do) an editor would keep in a vertical
crop, as boxes on every reference frame. A crowd with no subject of its own is labelled ``any``: any whole person
will do, but not the pavement between them.

How the labels are made (``python -m benchmarks.subjects sheet|build|review CLIP``): ``sheet`` draws the reference
frames every 0.5 s with every person box numbered (the reference of ``yolo11n_int8_openvino_model``) and prints the
boxes; the subject is chosen by eye at each sheet frame (``keys``: time and box numbers, one per alternative, ``null``
where that one is out of view); ``build`` links each chosen box to its neighbours on every reference frame by overlap
(a frame where the detector lost the person holds the last box) and writes the boxes into the label file, so the
labels do not depend on the detector a run is scored with; ``review`` draws the labelled boxes every 0.25 s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks import metrics
from smartcrop.tracker.bytetrack import iou

LABELS = Path(__file__).resolve().parent / "subjects"
EPSILON = 0.005  # seconds: label times are written to 2 decimals
LINK_IOU = 0.3  # overlap that continues a labelled person from one reference frame to the next


@dataclass(frozen=True)
class Span:
    """One labelled stretch ``[t0, t1)`` of a clip."""

    t0: float
    t1: float
    subject: str  # who, in words
    any_person: bool  # a crowd with no subject of its own: any whole person will do
    together: bool  # a group: every one of them must be kept where they fit one window together, else any one
    t: np.ndarray  # (N,) reference frame times
    boxes: np.ndarray  # (N, K, 4) xyxy display pixels: K alternatives, any of which will do; NaN where absent


@dataclass(frozen=True)
class SubjectLabels:
    clip: str
    spans: tuple[Span, ...]

    @classmethod
    def load(cls, path: Path) -> SubjectLabels:
        data = json.loads(Path(path).read_text())
        spans = []
        for span in data["spans"]:
            rows = span.get("boxes", [])
            width = max((len(row) - 1 for row in rows), default=0) // 4
            t = np.array([row[0] for row in rows], float)
            boxes = np.full((len(rows), width, 4), np.nan)
            for i, row in enumerate(rows):
                values = np.asarray(row[1:], float).reshape(-1, 4)
                boxes[i, :len(values)] = values
            spans.append(Span(float(span["t0"]), float(span["t1"]), span["subject"], bool(span.get("any", False)),
                              bool(span.get("all", False)), t, boxes))
        return cls(data["clip"], tuple(spans))


def labels_for(clip_name: str) -> SubjectLabels | None:
    path = LABELS / f"{Path(clip_name).stem}.json"
    return SubjectLabels.load(path) if path.exists() else None


@dataclass(frozen=True)
class SubjectScore:
    frames: int  # labelled reference frames scored
    shown: float  # share of them where the window keeps the labelled subject (NaN without any)


def subject_shown(labels: SubjectLabels, times: np.ndarray, windows: np.ndarray, people_time: np.ndarray,
                  people: np.ndarray) -> SubjectScore:
    """Share of labelled reference frames where the window keeps the labelled subject (``metrics.covered``).

    ``times`` (R,) are the scored run's reference frame times and ``windows`` (R, 4) its window on each. A labelled
    box is matched to the reference frame at its time; ``people_time`` and ``people`` (xyxy) are the scored run's
    person boxes, read only by ``any`` spans.
    """
    times = np.asarray(times, float)
    windows = np.asarray(windows, float).reshape(-1, 4)
    hits: list[np.ndarray] = []
    for span in labels.spans:
        if span.any_person:
            inside = (people_time >= span.t0 - EPSILON) & (people_time < span.t1 - EPSILON)
            row = _nearest(times, people_time[inside])
            kept = metrics.covered(people[inside], windows[row])
            seen = np.unique(row)
            hits.append(np.isin(seen, row[kept]))
            continue
        if not len(span.t):
            continue
        row = _nearest(times, span.t)
        scored = np.abs(times[row] - span.t) <= EPSILON  # a labelled frame the scored run has
        present = ~np.isnan(span.boxes).any(axis=2)  # (N, K)
        kept = np.zeros(present.shape, bool)
        for k in range(span.boxes.shape[1]):
            ok = present[:, k]
            kept[ok, k] = metrics.covered(span.boxes[ok, k], windows[row[ok]])
        labelled = scored & present.any(axis=1)
        shown = kept.any(axis=1)
        if span.together:  # the whole group where it fits the window, else any one of them
            union = np.column_stack([np.nanmin(span.boxes[..., 0], 1), np.nanmin(span.boxes[..., 1], 1),
                                     np.nanmax(span.boxes[..., 2], 1), np.nanmax(span.boxes[..., 3], 1)])
            size = windows[row][:, 2:]
            fits = (union[:, 2] - union[:, 0] <= size[:, 0]) & (union[:, 3] - union[:, 1] <= size[:, 1])
            shown = np.where(fits, (kept | ~present).all(axis=1), shown)
        hits.append(shown[labelled])
    flat = np.concatenate(hits) if hits else np.zeros(0, bool)
    return SubjectScore(len(flat), float(flat.mean()) if len(flat) else float("nan"))


def _nearest(times: np.ndarray, t: np.ndarray) -> np.ndarray:
    right = np.clip(np.searchsorted(times, t), 1, max(1, len(times) - 1))
    left = right - 1
    return np.where(np.abs(times[left] - t) <= np.abs(times[np.minimum(right, len(times) - 1)] - t), left,
                    np.minimum(right, len(times) - 1))


# ---------------------------------------------------------------------------------------------------------------------
# making the labels


def link(frames: list[np.ndarray], start: int, box: np.ndarray, stop: int) -> dict[int, np.ndarray]:
    """The person whose box is ``box`` on frame ``start``, followed frame by frame towards ``stop`` (either way) by
    the best overlap; a frame without a box overlapping by ``LINK_IOU`` holds the last one."""
    out = {start: box}
    step = 1 if stop >= start else -1
    current = box
    for index in range(start + step, stop + step, step):
        candidates = frames[index]
        if len(candidates):
            overlap = iou(current, candidates)[0]
            if overlap.max() >= LINK_IOU:
                current = candidates[int(overlap.argmax())]
        out[index] = current
    return out


def track_from_keys(frames: list[np.ndarray], key_frames: list[int], key_boxes: list[np.ndarray]) -> np.ndarray:
    """(F, 4) boxes of one labelled person on every frame from the first key to the last: each stretch between two
    keys is followed forward from the first for its first half and back from the second for the rest, so every box
    is near a key a person checked."""
    first, last = key_frames[0], key_frames[-1]
    out = np.full((last - first + 1, 4), np.nan)
    out[last - first] = key_boxes[-1]
    for a, box_a, b, box_b in zip(key_frames, key_boxes, key_frames[1:], key_boxes[1:]):
        middle = (a + b) // 2
        for index, box in link(frames, a, box_a, middle).items():
            out[index - first] = box
        for index, box in link(frames, b, box_b, middle + 1).items():
            out[index - first] = box
    return out


def span_track(frames: list[np.ndarray], span_frames: np.ndarray, keys: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """(len(span_frames), 4) boxes of one alternative over a span, from its keys (reference frame index, box);
    before the first key and after the last the person is followed from the nearest key."""
    first, last = int(span_frames[0]), int(span_frames[-1])
    out = np.full((last - first + 1, 4), np.nan)
    if not keys:
        return out
    key_frames = [k for k, _ in keys]
    key_boxes = [b for _, b in keys]
    out[key_frames[0] - first:key_frames[-1] - first + 1] = track_from_keys(frames, key_frames, key_boxes)
    for index, box in link(frames, key_frames[0], key_boxes[0], first).items():
        out[index - first] = box
    for index, box in link(frames, key_frames[-1], key_boxes[-1], last).items():
        out[index - first] = box
    return out


def build(path: Path, reference) -> dict:
    """Fill each span's ``boxes`` from its ``keys`` ([time, [box number, ...]], numbered as on the sheets: the person
    boxes of that reference frame in the reference's order; ``null`` where an alternative is not in view)."""
    data = json.loads(Path(path).read_text())
    ref_frames = reference.frames
    person = reference.cls == 0
    frames = [reference.xyxy[person & (reference.frame == f)].astype(float) for f in ref_frames]
    times = reference.t[ref_frames]
    for span in data["spans"]:
        span.pop("boxes", None)
        if span.get("any"):
            continue
        inside = np.flatnonzero((times >= span["t0"] - EPSILON) & (times < span["t1"] - EPSILON))
        keys = span["keys"]
        width = max(len(numbers) for _, numbers in keys)
        tracks = []
        for alternative in range(width):
            chosen = []
            for t, numbers in keys:
                index = int(np.argmin(np.abs(times - t)))
                number = numbers[alternative] if alternative < len(numbers) else None
                if number is not None:
                    chosen.append((index, frames[index][number]))
            track = span_track(frames, inside, chosen)
            key_times = np.array([t for t, _ in keys])
            absent = np.array([alternative >= len(numbers) or numbers[alternative] is None for _, numbers in keys])
            nearest = np.argmin(np.abs(times[inside][:, None] - key_times[None]), axis=1)
            track[absent[nearest]] = np.nan  # nearer a key where this person is out of view than one where seen
            tracks.append(track)
        span["boxes"] = [[round(float(times[i]), 4)] + [None if np.isnan(v) else round(float(v), 1) for track in tracks
                                                          for v in track[i - inside[0]]]
                         for i in inside]
    return data


def dump(data: dict) -> str:
    """JSON with one line per key and per box row, so a label file reads (and diffs) by eye."""
    def rows(name: str, values: list) -> str:
        return f'"{name}": [\n' + ",\n".join("    " + json.dumps(v) for v in values) + "\n   ]"

    spans = []
    for span in data["spans"]:
        fields = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in span.items() if k not in ("keys", "boxes")]
        fields += [rows(k, span[k]) for k in ("keys", "boxes") if k in span]
        spans.append("  {" + ",\n   ".join(fields) + "}")
    head = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in data.items() if k != "spans"]
    return "{" + ",\n ".join(head + ['"spans": [\n' + ",\n".join(spans) + "\n ]"]) + "}\n"


def numbered_sheet(clip: Path, reference, out: Path, step: float = 0.5) -> list[str]:
    """The reference frames every ``step`` seconds with every person box numbered (the numbers ``keys`` use); returns
    one line per frame: its time and numbered boxes."""
    from smartcrop.media.decode import DecodedFrame, decode_video, display_size, to_display_array
    from smartcrop.media.probe import probe

    media = probe(clip)
    size = display_size(media, 480)
    scale = size[0] / media.display_width
    wanted, next_t = [], -1.0
    for frame in reference.frames:
        if reference.t[frame] >= next_t - 1e-6:
            wanted.append(int(frame))
            next_t = reference.t[frame] + step
    lines, tiles = [], []
    for item in decode_video(clip):
        if not isinstance(item, DecodedFrame) or item.index not in wanted:
            continue
        boxes = reference.xyxy[(reference.frame == item.index) & (reference.cls == 0)]
        tiles.append(_tile(to_display_array(item.frame, media, size), boxes * scale, f"{item.t:.2f}", numbered=True))
        lines.append(f"{item.t:.2f}: " + "  ".join(f"{k}:{[int(v) for v in box]}" for k, box in enumerate(boxes)))
        if item.index >= wanted[-1]:
            break
    _save_grid(tiles, out, columns=4)
    return lines


def _tile(picture: np.ndarray, boxes: np.ndarray, caption: str, *, numbered: bool = False):
    from PIL import Image, ImageDraw

    tile = Image.fromarray(picture)
    draw = ImageDraw.Draw(tile)
    for number, box in enumerate(boxes):
        draw.rectangle(tuple(box), outline=(0, 255, 0), width=2)
        if numbered:
            draw.rectangle((box[0], box[1], box[0] + 16, box[1] + 12), fill=(0, 0, 0))
            draw.text((box[0] + 2, box[1]), str(number), fill=(255, 255, 0))
    draw.text((2, 0), caption, fill=(255, 255, 0))
    return tile


def _save_grid(tiles: list, out: Path, columns: int) -> Path:
    from PIL import Image

    width, height = tiles[0].size
    sheet = Image.new("RGB", (columns * (width + 2), -(-len(tiles) // columns) * (height + 2)), (20, 20, 20))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * (width + 2), (i // columns) * (height + 2)))
    sheet.save(out)
    return out


def review_sheet(clip: Path, reference, labels: SubjectLabels, out: Path, step: float = 0.25) -> Path:
    """Every ``step`` seconds of labelled time: the frame with the labelled boxes drawn (any: every person)."""
    from smartcrop.media.decode import DecodedFrame, decode_video, display_size, to_display_array
    from smartcrop.media.probe import probe

    media = probe(clip)
    size = display_size(media, 320)
    scale = size[0] / media.display_width
    wanted: dict[float, list[np.ndarray]] = {}
    for span in labels.spans:
        next_t = span.t0
        for t, alternatives in zip(span.t, span.boxes):
            if t >= next_t - 1e-6:
                wanted[round(t, 3)] = [a for a in alternatives if not np.isnan(a).any()]
                next_t = t + step
    tiles = []
    for item in decode_video(clip):
        if isinstance(item, DecodedFrame) and round(item.t, 3) in wanted:
            boxes = np.asarray(wanted[round(item.t, 3)], float).reshape(-1, 4) * scale
            tiles.append(_tile(to_display_array(item.frame, media, size), boxes, f"{item.t:.2f}"))
    return _save_grid(tiles, out, columns=8)


def main(argv: list[str] | None = None) -> None:
    import argparse

    from benchmarks.common import DEFAULT_MODEL_NAME, configure_environment, media_dir, shared_dir
    from benchmarks.reference import reference_for
    from smartcrop.media.probe import probe

    parser = argparse.ArgumentParser(prog="python -m benchmarks.subjects", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["sheet", "build", "review"])
    parser.add_argument("clip", help="a word of the clip's file name")
    parser.add_argument("--out", default="sheet.png")
    args = parser.parse_args(argv)
    model = configure_environment(str(shared_dir() / "models" / DEFAULT_MODEL_NAME))  # labels never follow --model
    clip = next(p for p in sorted(media_dir().iterdir()) if args.clip in p.name)
    reference = reference_for(clip, probe(clip), model)
    path = LABELS / f"{clip.stem}.json"
    if args.action == "sheet":
        print("\n".join(numbered_sheet(clip, reference, Path(args.out))))
        print(f"wrote {args.out}")
    elif args.action == "build":
        path.write_text(dump(build(path, reference)))
        print(f"wrote {path}")
    else:
        print(review_sheet(clip, reference, SubjectLabels.load(path), Path(args.out)))


if __name__ == "__main__":
    main()
