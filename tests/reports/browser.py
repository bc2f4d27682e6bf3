"""Open an HTML report in headless Chromium (Debian's ``chromium``) and report what rendered.

One Chromium process per page: ``--dump-dom`` after a small probe script (injected into a copy
of the page) has written its findings into the DOM, and ``--screenshot`` of the same load. The
probe records script errors, failed resource loads, ``console.error`` calls (and Chromium's log
every console message, its own included), requests that left
the page (a self-contained report makes none), every ``<img>``'s decoded size, every inline SVG
chart's labels that fall outside its drawing or overlap their neighbour, and whether the page is
wider than the window (horizontal overflow)."""

from __future__ import annotations

import html
import json
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")
WIDTH, HEIGHT = 1280, 1600
# Runs first in <head>: catches what goes wrong while the page loads.
HOOK = """<script>window.__probe={errors:[],console:[]};
window.addEventListener('error',function(e){var t=e.target;window.__probe.errors.push(t&&t!==window&&(t.src||t.href)
?'failed to load '+String(t.src||t.href).slice(0,80):String(e.message));},true);
['error','warn'].forEach(function(k){var f=console[k];console[k]=function(){window.__probe.console.push(k+': '+
Array.prototype.join.call(arguments,' '));return f.apply(console,arguments);};});</script>"""
# Runs after load: writes its findings as JSON into <pre id="mlship-probe">.
PROBE = """<script>window.addEventListener('load',function(){var p=window.__probe,d=document.documentElement;
var imgs=Array.prototype.map.call(document.images,function(i){var r=i.getBoundingClientRect();return {alt:i.alt,
complete:i.complete,natural_width:i.naturalWidth,natural_height:i.naturalHeight,width:r.width,right:r.right};});
var charts=Array.prototype.map.call(document.querySelectorAll('svg.chart'),function(s){var b=s.getBoundingClientRect(),
cut=[];Array.prototype.forEach.call(s.querySelectorAll('text'),function(t){var r=t.getBoundingClientRect();
if(r.width<=0||r.left<b.left-0.5||r.right>b.right+0.5||r.top<b.top-0.5||r.bottom>b.bottom+0.5){cut.push(t.textContent);}});
var ticks=Array.prototype.map.call(s.querySelectorAll('.x-ticks text'),function(t){var r=t.getBoundingClientRect();
return {left:r.left,right:r.right,rotated:t.hasAttribute('transform'),text:t.textContent};}),overlaps=[];
for(var i=1;i<ticks.length;i++){var a=ticks[i-1],c=ticks[i];if(c.rotated?(c.right-a.right)*Math.sin(40*Math.PI/180)<7:
c.left<a.right){overlaps.push(a.text+'/'+c.text);}}
return {alt:s.getAttribute('aria-label'),width:b.width,height:b.height,cut:cut,overlaps:overlaps};});
var out={title:document.title,errors:p.errors,console:p.console,images:imgs,charts:charts,scroll_width:d.scrollWidth,
client_width:d.clientWidth,viewport_width:window.innerWidth,
requests:performance.getEntriesByType('resource').map(function(e){return e.name;}),
tables:document.querySelectorAll('table').length,headings:Array.prototype.map.call(
document.querySelectorAll('h1,h2'),function(h){return h.textContent.trim();})};
var pre=document.createElement('pre');pre.id='mlship-probe';pre.textContent=JSON.stringify(out);
document.body.appendChild(pre);});</script>"""
RESULT = re.compile(r'<pre id="mlship-probe">(.*?)</pre>', re.S)
# With --enable-logging=stderr Chromium prints every console message, its own included (blocked
# loads, security and deprecation messages), as ``[...:INFO:CONSOLE:1] "text", source: ...``.
CONSOLE_LINE = re.compile(r":CONSOLE[:(]\d+\)?\] (.*)$", re.M)


class BrowserError(RuntimeError):
    """Chromium did not produce the probe's findings (crashed, timed out, or the page never loaded)."""


@dataclass
class Rendered:
    """What the probe found in one page, and the screenshot of it."""

    title: str
    errors: list[str]
    console: list[str]
    images: list[dict[str, Any]]
    charts: list[dict[str, Any]]
    scroll_width: int
    client_width: int
    viewport_width: int
    requests: list[str]
    tables: int
    headings: list[str]
    screenshot: Path = field(default=Path())
    browser_console: list[str] = field(default_factory=list)  # from Chromium's log, not the page's hook

    def problems(self) -> list[str]:
        """Every rendering error found, as sentences (empty when the page rendered cleanly)."""
        found = [f"script error: {e}" for e in self.errors] + [f"console {c}" for c in self.console]
        found += [f"browser console: {c}" for c in self.browser_console]
        found += [f"network request: {r}" for r in self.requests if not r.startswith("data:")]
        for img in self.images:
            if not img["complete"] or img["natural_width"] <= 0 or img["natural_height"] <= 0:
                found.append(f"image {img['alt']!r} did not decode")
            elif img["width"] <= 0 or img["right"] > self.viewport_width + 1:
                found.append(f"image {img['alt']!r} is not laid out inside the window ({img['right']:.0f}px)")
        for chart in self.charts:  # inline SVG charts: every label inside the drawing, tick labels apart
            if chart["width"] <= 0 or chart["height"] <= 0:
                found.append(f"chart {chart['alt']!r} is not laid out")
            found += [f"chart {chart['alt']!r}: label {text!r} is cut" for text in chart["cut"]]
            found += [f"chart {chart['alt']!r}: tick labels {pair} overlap" for pair in chart["overlaps"]]
        if self.scroll_width > self.client_width + 1:
            found.append(f"horizontal overflow: the page is {self.scroll_width}px wide in a "
                         f"{self.client_width}px window")
        return found


def available() -> bool:
    """Whether Chromium is installed where Debian puts it."""
    return CHROMIUM.is_file()


def instrumented(page: str) -> str:
    """The page with the hook first in ``<head>`` and the probe last in ``<body>``."""
    head = re.search(r"<head[^>]*>", page, re.I)
    page = page[:head.end()] + HOOK + page[head.end():] if head else HOOK + page
    tail = page.lower().rfind("</body>")
    return page[:tail] + PROBE + page[tail:] if tail >= 0 else page + PROBE


def render(report: Path, screenshot: Path, *, timeout: float = 60.0) -> Rendered:
    """Load ``report`` (an HTML file) in one headless Chromium process; write ``screenshot`` (PNG)."""
    probe_page = screenshot.with_suffix(".probe.html")
    probe_page.write_text(instrumented(report.read_text(encoding="utf-8")), encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="mlship-chromium-") as profile:
        proc = subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}",
                               f"--screenshot={screenshot}", "--virtual-time-budget=10000", "--enable-logging=stderr",
                               "--v=0", "--dump-dom",
                               probe_page.resolve().as_uri()],
                              capture_output=True, text=True, timeout=timeout, check=False)
    found = RESULT.search(proc.stdout)
    if found is None:
        raise BrowserError(f"chromium exited {proc.returncode} without the probe's findings: {proc.stderr[-800:]}")
    return Rendered(**json.loads(html.unescape(found.group(1))), screenshot=screenshot,
                    browser_console=CONSOLE_LINE.findall(proc.stderr))
