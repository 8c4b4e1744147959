"""The stdlib PNG bar chart is a valid PNG of the expected size with bars of the expected length."""

import base64
import re
import struct
import zlib

from skill_pipeline.lib.charts import bar_chart_markdown, bar_chart_png, markdown_table


def _decode(png: bytes) -> tuple[int, int, list[bytes]]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", None
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind, data = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", png[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + data)
        if kind == b"IHDR":
            size = struct.unpack(">II", data[:8])
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    width, height = size
    raw = zlib.decompress(idat)
    rows = [raw[y * (1 + 3 * width) + 1:(y + 1) * (1 + 3 * width)] for y in range(height)]
    return width, height, rows


def test_bar_lengths_follow_the_values():
    width, height, rows = _decode(bar_chart_png([10, 5, 0], width=102, bar_height=2, gap=1))
    assert (width, height) == (102, 3 * 3 + 1)
    white = bytes([255, 255, 255])

    def painted(row: bytes) -> int:
        return sum(1 for x in range(1, width) if row[3 * x:3 * x + 3] != white)

    assert [painted(rows[y]) for y in (1, 4, 7)] == [100, 50, 0]


def test_markdown_embeds_the_png_and_escapes_cells():
    text = bar_chart_markdown("Sizes", ["a|b"], [3])
    encoded = re.search(r"base64,([A-Za-z0-9+/=]+)\)", text).group(1)
    assert _decode(base64.b64decode(encoded))[0] == 360
    assert "| 1 | a\\|b | 3 |" in text
    assert markdown_table(["x"], [["line\nbreak"]]) == "| x |\n|---|\n| line break |\n"
