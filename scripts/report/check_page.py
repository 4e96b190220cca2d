#!/usr/bin/env python3
"""Checks a `circuitscope report` page as a real browser rendered it:
  - the browser's log has no console message (errors, warnings, uncaught exceptions);
  - the DOM after the scripts ran holds every figure id given with --figure, no id twice, and the
    page's script finished (body data-ready="true");
  - every inline <svg> of the page, and every file given with --svg, parses as XML;
  - each screenshot is not blank: at least 16 distinct colours and 3% of pixels not white.
Exits 1 naming each failed check. PNGs are decoded here (8-bit RGB/RGBA, the browser's output)."""
import argparse
import collections
import re
import struct
import sys
import xml.etree.ElementTree as ET
import zlib


def png_pixels(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            if depth != 8 or ctype not in (2, 6):
                raise ValueError(f"{path}: bit depth {depth}, colour type {ctype}; expected 8-bit RGB or RGBA")
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    rows = []
    i = 0
    for _ in range(height):
        ftype, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if ftype == 1:
                line[x] = (line[x] + a) & 255
            elif ftype == 2:
                line[x] = (line[x] + b) & 255
            elif ftype == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--page", required=True)
    p.add_argument("--dom", required=True, help="the DOM the browser dumped (--dump-dom)")
    p.add_argument("--log", required=True, help="the browser's stderr (--enable-logging=stderr)")
    p.add_argument("--png", action="append", default=[])
    p.add_argument("--figure", action="append", default=[], help="an element id the DOM must hold")
    p.add_argument("--svg", action="append", default=[], help="an SVG file that must parse as XML")
    a = p.parse_args()
    bad = []
    with open(a.log, errors="replace") as f:
        console = [l.strip() for l in f if ":CONSOLE" in l]
    bad += [f"console: {l}" for l in console]
    with open(a.dom, errors="replace") as f:
        dom = f.read()
    for fid in a.figure:
        if f'id="{fid}"' not in dom:
            bad.append(f"DOM: no element with id {fid}")
    ids = re.findall(r'\sid="([^"]*)"', dom)
    dups = sorted(i for i, k in collections.Counter(ids).items() if k > 1)
    if dups:
        bad.append(f"DOM: {len(dups)} id(s) used more than once, e.g. {dups[:3]}")
    if 'data-ready="true"' not in dom:
        bad.append("DOM: the page's script did not finish (body data-ready)")
    with open(a.page, encoding="utf-8") as f:
        page = f.read()
    svgs = re.findall(r"<svg\b.*?</svg>", page, flags=re.S)
    for k, s in enumerate(svgs):
        try:
            ET.fromstring(s)
        except ET.ParseError as e:
            bad.append(f"inline svg #{k + 1}: not XML: {e}")
    for path in a.svg:
        try:
            ET.parse(path)
        except ET.ParseError as e:
            bad.append(f"{path}: not XML: {e}")
    for path in a.png:
        w, h, bpp, rows = png_pixels(path)
        colours, ink = set(), 0
        for r in rows[::4]:
            for x in range(0, w * bpp, bpp * 4):
                px = r[x:x + 3]
                colours.add(px)
                ink += px != b"\xff\xff\xff"
        sampled = len(rows[::4]) * len(range(0, w * bpp, bpp * 4))
        print(f"{path}: {w}x{h}, {len(colours)} colours sampled, {100 * ink / sampled:.1f}% not white")
        if len(colours) < 16 or ink < 0.03 * sampled:
            bad.append(f"{path}: looks blank ({len(colours)} colours, {ink} of {sampled} sampled pixels not white)")
    print(f"{a.page}: {len(svgs)} inline SVG(s), {len(a.svg)} SVG file(s), {len(a.figure)} figure id(s), "
          f"{len(console)} console message(s)")
    if bad:
        for b in bad:
            print("FAIL " + b)
        sys.exit(1)
    print("page checks passed")


if __name__ == "__main__":
    main()
