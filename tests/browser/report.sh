#!/usr/bin/env bash
# Renders a report.html from a real small search (wine, 6 trials, two of them stopped
# early) in headless Chromium, and checks that every section drew: the rendered DOM holds
# the SVG plots with their points, paths, cells and tooltips and the sortable tables, and
# each plotting section, cut out of the report into a page of its own (with the report's
# style), screenshots with coloured (non-grey) pixels in quantity. Installs Debian's
# chromium when missing (needs root). Run from the repo root.
set -euo pipefail
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
if ! command -v chromium >/dev/null 2>&1; then
  apt-get install -y chromium >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }
fi
cargo bench --profile dev --bench final -- wine --trials 6 --seeds 1 --report "$out/report.html" >/dev/null
test -s "$out/report.html"
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
  --disable-component-update --disable-sync --user-data-dir="$out/profile")
chromium "${flags[@]}" --dump-dom "file://$out/report.html" > "$out/dom.html" 2>/dev/null
chromium "${flags[@]}" --window-size=1200,2600 --screenshot="$out/shot.png" "file://$out/report.html" >/dev/null 2>&1
# One page per plotting section: the report's head, the section's heading and body.
python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
html = open(f"{out}/report.html").read()
head, body = html.split("<body>", 1)
parts = re.split(r"(?=<h2>)", body)
names = []
for part in parts[1:]:
    title = re.match(r"<h2>([^<]*)</h2>", part).group(1)
    if "<svg" not in part:
        continue
    name = re.sub(r"[^a-z]+", "-", title.lower()).strip("-")
    open(f"{out}/section-{name}.html", "w").write(head + "<body>" + part + "</body></html>")
    names.append(name)
open(f"{out}/sections", "w").write("\n".join(names) + "\n")
PY
while read -r name; do
  chromium "${flags[@]}" --window-size=1200,900 --screenshot="$out/section-$name.png" "file://$out/section-$name.html" >/dev/null 2>&1
done < "$out/sections"
python3 - "$out" <<'PY'
import re, struct, sys, zlib, shutil, os
out = sys.argv[1]
dom = open(f"{out}/dom.html").read()
svgs = len(re.findall(r"<svg ", dom))
pts = len(re.findall(r'<circle class="pt"', dom))
paths = len(re.findall(r'<path class="(best|trial|curve)', dom))
pruned = len(re.findall(r'<path class="curve pruned"', dom))
bars = len(re.findall(r'<rect class="bar"', dom))
assert svgs >= 4, f"{svgs} svg elements rendered"
assert pts >= 3 and paths >= 3 and pruned >= 1 and bars >= 1, (pts, paths, pruned, bars)
assert '<table id="final"' in dom, "no final-model table"
# Every section, and a tooltip on every mark.
for h2 in ["Optimisation history", "Parallel coordinates", "Slices", "Parameter importance",
           "The two most important parameters", "Learning curves", "Timeline", "Best trials", "Failed trials"]:
    assert f"<h2>{h2}</h2>" in dom, f"no section {h2}"
# The timeline: a bar per trial that ran (each with its start and run time in its tooltip).
timeline = re.search(r'<div id="timeline">(.*?)</div>', dom, re.S)
assert timeline, "no timeline"
tl_bars = len(re.findall(r'<rect class="cell"[^>]*><title>[^<]*started at', timeline.group(1)))
assert tl_bars >= 3, f"{tl_bars} timeline bars"
cells = len(re.findall(r'<rect class="cell"', dom))
rings = len(re.findall(r'<circle class="pt pruned"', dom))
assert cells >= 1 and rings >= 1, (cells, rings)
marks = len(re.findall(r'<(circle|path class="(trial|curve)[^"]*"|rect class="(cell|bar)")[^>]*>', dom))
titles = len(re.findall(r'<(circle|path class="(trial|curve)[^"]*"|rect class="(cell|bar)")[^>]*><title>', dom))
assert marks == titles, f"{marks - titles} of {marks} marks without a tooltip"
rows = re.search(r'<table id="trials" class="sortable">.*?</table>', dom, re.S)
assert rows and rows.group(0).count("<tr>") >= 4, "the best-trials table"
# The sorting script ran: clicking works in a browser; here it only must not be external.
assert not re.search(r'<script[^>]* src=', dom)

def coloured_pixels(path):
    """Pixels with a clear hue in a PNG (8-bit RGB/RGBA, non-interlaced), without PIL."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), (depth, ctype)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    coloured = 0
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        for x in range(0, stride, bpp):
            r, g, bl = line[x], line[x + 1], line[x + 2]
            if max(r, g, bl) - min(r, g, bl) > 40:
                coloured += 1
        prev = line
    return coloured

coloured = coloured_pixels(f"{out}/shot.png")
assert coloured > 2000, f"only {coloured} coloured pixels: the plots did not draw"
sections = open(f"{out}/sections").read().split()
assert len(sections) >= 6, sections
for name in sections:
    n = coloured_pixels(f"{out}/section-{name}.png")
    assert n > 300, f"section {name}: only {n} coloured pixels, it did not draw"
keep = os.environ.get("REPORT_SHOT")
if keep:
    shutil.copy(f"{out}/shot.png", keep)
print(f"report ok: {svgs} svg, {pts} points, {paths} paths ({pruned} pruned), {bars} bars, {cells} cells, "
      f"{coloured} coloured pixels; sections drawn: {', '.join(sections)}")
PY
