"""Tiny bar charts as PNG (stdlib zlib/struct only, no matplotlib) embedded in Markdown metadata.

The Dagster UI renders Markdown metadata, including ``data:image/png;base64`` images, so plots travel with the
materialisation and the UI never has to open the warehouse.
"""

import base64
import struct
import zlib
from collections.abc import Sequence
from itertools import chain

PALETTE = [(66, 133, 244), (219, 68, 55), (244, 180, 0), (15, 157, 88), (171, 71, 188), (0, 172, 193)]
BACKGROUND = (255, 255, 255)
AXIS = (120, 120, 120)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(pixels: list[list[tuple[int, int, int]]]) -> bytes:
    """Encode rows of RGB pixels as a PNG file."""
    height, width = len(pixels), len(pixels[0])
    raw = b"".join(b"\x00" + bytes(chain.from_iterable(row)) for row in pixels)  # channels flattened in C
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9))
            + _chunk(b"IEND", b""))


def bar_chart_png(values: Sequence[float], *, width: int = 360, bar_height: int = 12, gap: int = 4,
                  max_value: float | None = None) -> bytes:
    """Horizontal bars, one per value, top to bottom, scaled to ``max_value`` (default: the largest value)."""
    count = max(len(values), 1)
    height = count * (bar_height + gap) + gap
    top = max_value if max_value is not None else max([float(v) for v in values] or [1.0])
    top = top if top > 0 else 1.0
    pixels = [[BACKGROUND] * width for _ in range(height)]
    for row in range(height):
        pixels[row][0] = AXIS
    for i, value in enumerate(values):
        length = round((width - 2) * max(0.0, min(float(value), top)) / top)
        colour = PALETTE[i % len(PALETTE)]
        y0 = gap + i * (bar_height + gap)
        for y in range(y0, y0 + bar_height):
            pixels[y][1:1 + length] = [colour] * length
    return png_bytes(pixels)


def bar_chart_markdown(title: str, labels: Sequence[str], values: Sequence[float], *,
                       max_value: float | None = None, fmt: str = "{:g}") -> str:
    """A Markdown section: title, the embedded PNG, then a legend table of label and value."""
    if not values:
        return f"**{title}**\n\n(no data)\n"
    encoded = base64.b64encode(bar_chart_png(values, max_value=max_value)).decode("ascii")
    legend = markdown_table(["bar", "label", "value"],
                            [(i + 1, label, fmt.format(value)) for i, (label, value) in
                             enumerate(zip(labels, values, strict=True))])
    return f"**{title}**\n\n![{title}](data:image/png;base64,{encoded})\n\n{legend}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; pipes and newlines in cells are escaped so a dirty value cannot break the layout."""
    def cell(value: object) -> str:
        text = "" if value is None else str(value)
        return text.replace("|", "\\|").replace("\n", " ")[:120]
    head = "| " + " | ".join(headers) + " |\n|" + "---|" * len(headers) + "\n"
    return head + "\n".join("| " + " | ".join(cell(v) for v in row) + " |" for row in rows) + "\n"
