"""Load a built page in headless Chromium and report what a reader would see go wrong.

Used by ``tests/test_book.py``. A page passes when

- MathJax typeset its equations (``<mjx-container>`` elements in the rendered DOM) and no raw TeX
  (``\\[``, ``\\]``, ``\\(``, ``\\begin{``) is left in the visible text;
- every ``<img>`` points to a file that exists in the built site;
- the page requested nothing from another host. Chromium runs with every host name mapped to
  "not found" and logs its network events; a request the page itself started (its initiator is
  the page, "null" for a file:// page, not Chromium's own "not an origin") for an http(s) URL is a
  page that would need the network to be read.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
RAW_TEX = ("\\[", "\\]", "\\(", "\\)", "\\begin{", "\\end{")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class Report:
    math_elements: int = 0
    images: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class _Dom(HTMLParser):
    """Collects the visible text (outside script/style/math output) and the image sources."""

    HIDDEN = {"script", "style", "noscript", "template", "mjx-container"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth_hidden = 0
        self.text: list[str] = []
        self.images: list[str] = []
        self.math = 0

    def handle_starttag(self, tag, attrs):
        if tag == "mjx-container":
            self.math += 1
        if tag in self.HIDDEN:
            self.depth_hidden += 1
        if tag == "img":
            src = dict(attrs).get("src")
            if src:
                self.images.append(src)

    def handle_endtag(self, tag):
        if tag in self.HIDDEN and self.depth_hidden:
            self.depth_hidden -= 1

    def handle_data(self, data):
        if not self.depth_hidden:
            self.text.append(data)


def _page_requests(net_log: Path) -> list[str]:
    """URLs whose request the page itself started, from a Chromium net log (possibly cut short)."""
    raw = net_log.read_text(errors="replace").rstrip()
    if not raw.endswith("}"):  # Chromium may stop before closing the JSON: close it ourselves
        raw = raw.rstrip(",\n ") + "]}"
    try:
        log = json.loads(raw)
    except json.JSONDecodeError:
        raw = raw[: raw.rfind("},") + 1] + "]}"
        log = json.loads(raw)
    types = log["constants"]["logEventTypes"]
    start_job = types["URL_REQUEST_START_JOB"]
    urls = []
    for event in log.get("events", []):
        params = event.get("params") or {}
        if event.get("type") == start_job and params.get("initiator") != "not an origin":
            urls.append(params.get("url", ""))
    return urls


def check_page(page: Path, chromium: str, timeout: float = 90.0) -> Report:
    """Render `page` (a built HTML file) headless and return what went wrong."""
    page = page.resolve()
    report = Report()
    with tempfile.TemporaryDirectory() as tmp:
        net_log = Path(tmp) / "net.json"
        command = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={tmp}/profile",
            '--host-resolver-rules=MAP * ~NOTFOUND',
            f"--log-net-log={net_log}", "--net-log-capture-mode=Default",
            "--virtual-time-budget=10000", "--dump-dom", page.as_uri(),
        ]
        env = dict(os.environ, HOME=tmp)
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
        dom = done.stdout
        if done.returncode != 0 or "<html" not in dom:
            report.problems.append(
                f"Chromium did not render {page.name} (exit {done.returncode}): "
                f"{done.stderr.strip()[-500:]}"
            )
            return report
        requests = _page_requests(net_log) if net_log.exists() else []
    parser = _Dom()
    parser.feed(dom)
    report.math_elements = parser.math
    report.images = parser.images
    if parser.math == 0:
        report.problems.append(f"{page.name}: no typeset math (no <mjx-container> in the DOM)")
    visible = " ".join(parser.text)
    leftovers = sorted({tex for tex in RAW_TEX if tex in visible})
    if leftovers:
        report.problems.append(f"{page.name}: raw TeX left in the visible text: {leftovers}")
    for src in parser.images:
        url = urlparse(src)
        if url.scheme in ("http", "https"):
            report.problems.append(f"{page.name}: image from another host: {src}")
        elif url.scheme in ("", "file") and not (page.parent / unquote(url.path)).exists():
            report.problems.append(f"{page.name}: image file missing: {src}")
    report.outside_requests = [u for u in requests if urlparse(u).scheme in ("http", "https")]
    for url in report.outside_requests:
        report.problems.append(f"{page.name}: requested {url} from another host")
    return report
