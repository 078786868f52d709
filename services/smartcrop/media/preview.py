"""A contact sheet: source frames with the crop window drawn, and the cropped picture beside each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from smartcrop.core.mediainfo import MediaInfo
from smartcrop.media.decode import DecodedFrame, decode_video, display_size, to_display_array

ROW_HEIGHT = 240


def contact_sheet(source: str | Path, media: MediaInfo, windows: np.ndarray, out: Path, rows: int = 6) -> Path:
    count = len(windows)
    wanted = sorted(set(np.linspace(0, max(0, count - 1), min(rows, count)).round().astype(int).tolist()))
    size = display_size(media, 960)
    scale = size[0] / media.display_width
    pictures: list[tuple[int, float, np.ndarray]] = []
    for item in decode_video(source):
        assert isinstance(item, DecodedFrame)
        if item.index in wanted:
            pictures.append((item.index, item.t, to_display_array(item.frame, media, size)))
        if item.index >= wanted[-1]:
            break
    tiles = []
    for index, t, picture in pictures:
        x, y, w, h = windows[min(index, count - 1)] * scale
        frame = Image.fromarray(picture)
        crop = frame.crop((int(x), int(y), int(x + w), int(y + h)))
        draw = ImageDraw.Draw(frame)
        draw.rectangle((x, y, x + w - 1, y + h - 1), outline=(255, 64, 64), width=max(2, size[0] // 300))
        draw.text((8, 8), f"{t:6.2f}s  frame {index}", fill=(255, 255, 0))
        ratio = ROW_HEIGHT / frame.height
        frame = frame.resize((max(1, int(frame.width * ratio)), ROW_HEIGHT))
        crop = crop.resize((max(1, int(crop.width * ROW_HEIGHT / max(1, crop.height))), ROW_HEIGHT))
        tiles.append((frame, crop))
    width = max(f.width + c.width for f, c in tiles) + 24
    sheet = Image.new("RGB", (width, (ROW_HEIGHT + 8) * len(tiles) + 8), (24, 24, 24))
    for row, (frame, crop) in enumerate(tiles):
        top = 8 + row * (ROW_HEIGHT + 8)
        sheet.paste(frame, (8, top))
        sheet.paste(crop, (16 + frame.width, top))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
