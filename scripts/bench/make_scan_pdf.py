"""Writes a deterministic ~760 KB "scanned" A4 PDF: one 300 dpi greyscale JPEG page with paper
grain and text-like strokes, as a scanner would produce.

usage: make_scan_pdf.py OUTPUT [TARGET_BYTES]
"""
import io
import random
import sys

from PIL import Image, ImageDraw, ImageFilter


def page(quality: int) -> bytes:
    rng = random.Random(20261128)
    width, height = 2480, 3508  # A4 at 300 dpi
    image = Image.new("L", (width, height), 245)
    draw = ImageDraw.Draw(image)
    for line in range(120):
        y = 250 + line * 26
        x = 200
        while x < width - 250:
            word = rng.randint(40, 180)
            draw.rectangle([x, y, x + word, y + 14], fill=rng.randint(20, 70))
            x += word + rng.randint(18, 30)
    grain = Image.effect_noise((width, height), 28)
    image = Image.blend(image, grain, 0.18).filter(ImageFilter.GaussianBlur(0.6))
    out = io.BytesIO()
    image.save(out, format="PDF", resolution=300.0, quality=quality)
    return out.getvalue()


def main():
    output = sys.argv[1]
    target = int(sys.argv[2]) if len(sys.argv) > 2 else 760_000
    best = None
    for quality in range(95, 10, -1):
        data = page(quality)
        if len(data) <= target:
            best = data
            break
    if best is None:
        raise SystemExit("cannot reach the target size")
    with open(output, "wb") as handle:
        handle.write(best)
    print(f"{output}: {len(best)} bytes")


if __name__ == "__main__":
    main()
