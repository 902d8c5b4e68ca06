"""The yearly certificate: a PNG drawn server-side with Pillow and Debian's fonts-noto-cjk.

Server-side so every client (mini-app, H5, a printer) gets the same image and no font travels to
the phone. The name on it is the citizen's honours nickname (default 低碳市民), never the phone.
"""
from __future__ import annotations

import io
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from app.errors import AppError

FONT_DIR = Path("/usr/share/fonts/opentype/noto")
FONT_FILES = {"regular": FONT_DIR / "NotoSansCJK-Regular.ttc", "bold": FONT_DIR / "NotoSansCJK-Bold.ttc"}
SC_INDEX = 2  # the Simplified Chinese face in the Noto Sans CJK collection (JP, KR, SC, TC, HK)
SIZE = (1240, 1754)  # A4 at 150 dpi
GREEN = (34, 112, 72)
DARK = (33, 37, 41)
MUTED = (96, 108, 100)
PAPER = (247, 251, 246)


def fonts_missing() -> list[str]:
    return [str(path) for path in FONT_FILES.values() if not path.is_file()]


@lru_cache(maxsize=16)
def _font(weight: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_FILES[weight]), size, index=SC_INDEX)


def render_certificate(report: dict[str, Any], name: str, *, issued: date) -> bytes:
    """The PNG bytes for one year's report; 503 when the CJK fonts are not installed."""
    if fonts_missing():
        raise AppError(
            "certificate_unavailable",
            "The certificate cannot be drawn right now (fonts are missing on the server).",
            "暂时无法生成证书（服务器缺少字体）。",
            503,
        )
    image = Image.new("RGB", SIZE, PAPER)
    draw = ImageDraw.Draw(image)
    width, height = SIZE
    draw.rectangle((40, 40, width - 40, height - 40), outline=GREEN, width=8)
    draw.rectangle((64, 64, width - 64, height - 64), outline=GREEN, width=2)

    def centred(y: int, value: str, weight: str, size: int, fill: tuple[int, int, int]) -> None:
        while size > 24 and draw.textlength(value, font=_font(weight, size)) > width - 200:
            size -= 4  # a long nickname shrinks to fit inside the frame
        draw.text((width // 2, y), value, font=_font(weight, size), fill=fill, anchor="mm")

    year = report["year"]
    kilograms = f"{report['co2e_grams'] // 100 / 10:,.1f}"  # rounded down: never overstate a saving
    trees = report["equivalents"]["trees"]
    car_km = report["equivalents"]["car_km"]
    centred(230, "上海碳普惠", "bold", 56, GREEN)
    centred(330, f"{year} 年度低碳证书", "bold", 88, DARK)
    centred(420, f"Low-Carbon Certificate {year}", "regular", 40, MUTED)
    centred(600, "兹证明", "regular", 44, DARK)
    centred(720, name, "bold", 84, GREEN)
    centred(860, f"在 {year} 年通过绿色出行与低碳生活", "regular", 44, DARK)
    centred(930, "累计减少碳排放", "regular", 44, DARK)
    centred(1070, f"{kilograms} 千克 CO2e", "bold", 110, GREEN)
    centred(1210, f"相当于 {trees} 棵树一年的吸收量", "regular", 40, DARK)
    centred(1270, f"或少开 {car_km} 公里燃油车", "regular", 40, DARK)
    centred(1350, f"低碳行为 {report['events']} 次 · 活跃 {report['active_days']} 天 · 获得徽章 "
                  f"{len(report['badges'])} 枚", "regular", 36, MUTED)
    centred(1430, f"{kilograms} kg CO2e avoided · ≈ {trees} tree-years · ≈ {car_km} car-km", "regular", 30, MUTED)
    centred(height - 230, "上海市碳普惠平台", "bold", 40, DARK)
    centred(height - 170, f"签发日期 {issued.isoformat()}", "regular", 32, MUTED)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
