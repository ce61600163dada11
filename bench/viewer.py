"""Viewer benchmark: the first image of a 500-slice CT on screen, and scrolling through it.

A CT series (bench.corpus.ct_series, 512x512 slices) is imported into a Lightbox data folder;
`lightbox serve` is started (also pinned to one CPU with taskset, a Pi-class stand-in), and the
system Chromium (Playwright, headless) opens it with its network throttled to a LAN (CDP
Network.emulateNetworkConditions: 100 Mbit/s each way, 1 ms latency), each time in a new
browser context (an empty cache), logged in first:
  first-image    navigation start -> the first frame drawn (the viewport's data-frame set and its
                 canvas lit), read by a requestAnimationFrame probe injected before the page runs
                 (the viewer's code is not touched)
  scroll-cold    right after the first image: ArrowDown pressed --slices times at --rate a second;
                 frames displayed a second (distinct frames seen by the probe, each animation frame,
                 over the time from the first key to the last slice shown), and that time
  scroll-warm    the same again from the first slice, the frames now prefetched and cached
  ohif-first     OHIF 3 (tests/.ohif, `lightbox ohif install`) on Lightbox's DICOMweb: navigation
                 start -> its viewport's canvas lit (what Orthanc Explorer 2 users open)
Figures are medians over --repeat runs; the ratio line is lightbox/ohif for the first image.
Run as `python -m bench.viewer` (no Orthanc, so no private network namespace).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from bench import corpus, harness, servers
from bench.harness import BenchError

USER, PASSWORD = "bench", "bench password 1"
CHROMIUM = "/usr/bin/chromium"
OHIF_PREPARED = harness.REPO_ROOT / "tests" / ".ohif"
LAN = {"offline": False, "latency": 1, "downloadThroughput": 100e6 / 8, "uploadThroughput": 100e6 / 8}
TIMEOUT_S = 60.0
# Injected before any script of the page (the context bypasses the CSP for it): notes when the
# first image is drawn (Lightbox: the viewport says which frame it shows; OHIF: its canvas is lit)
# and, while recording, which frame each animation frame shows.
PROBE = """(() => {
  const probe = window.__bench = { first: null, frames: [], recording: false };
  performance.setResourceTimingBufferSize(5000);  // every frame fetched, to see when fetching stops
  function lit(canvas) {
    if (!canvas || !canvas.width || !canvas.height) return false;
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let count = 0;
    for (let i = 0; i < data.length; i += 4 * 97) if (data[i] > 16 || data[i + 1] > 16 || data[i + 2] > 16) count++;
    return count > data.length / (4 * 97) * 0.02;
  }
  function tick(now) {
    const viewport = document.querySelector('.ws-vp');
    if (probe.first === null) {
      const canvas = document.querySelector(viewport ? '.ws-vp canvas' : 'canvas.cornerstone-canvas');
      if ((!viewport || viewport.dataset.frame) && lit(canvas)) probe.first = performance.now();
    }
    if (probe.recording && viewport) probe.frames.push([now, viewport.dataset.frame || '']);
    requestAnimationFrame(tick);
  }
  requestAnimationFrame(tick);
})();"""


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@contextlib.contextmanager
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BenchError("the playwright package is not installed (pip install -e '.[test]')") from None
    if not Path(CHROMIUM).exists():
        raise BenchError(f"{CHROMIUM} is not installed (sudo apt-get install -y chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox",
                                              "--disable-gpu", "--disable-background-networking"])  # fmt: skip
        try:
            yield launched
        finally:
            launched.close()


@contextlib.contextmanager
def session(chromium: Any, base: str) -> Iterator[Any]:
    """A page of a new context (empty cache) on a LAN, logged in."""
    context = chromium.new_context(viewport={"width": 1366, "height": 768}, bypass_csp=True)
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_S * 1000)
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", LAN)
        page.goto(base + "/login")
        page.fill("#name", USER)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(base + "/")
        page.add_init_script(PROBE)
        yield page
    finally:
        context.close()


def wait(page: Any, script: str, what: str) -> Any:
    deadline = time.monotonic() + TIMEOUT_S
    while not (value := page.evaluate(script)):
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not within {TIMEOUT_S:.0f} s")
        time.sleep(0.01)
    return value


def first_image(page: Any, url: str) -> float:
    """Seconds from navigation start to the first image drawn."""
    page.goto(url, wait_until="commit")
    return float(wait(page, "() => window.__bench && window.__bench.first", "first image")) / 1000


def timeline(page: Any) -> None:
    """Log the page's resources up to the first image (start, first byte, end, in ms from navigation
    start), the HTML's own timing, and the first image: what lies on its path and what competes."""
    entries = page.evaluate("""() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const rows = [['(html)', 0, nav.responseStart, nav.responseEnd, nav.transferSize]];
      for (const e of performance.getEntriesByType('resource'))
        if (e.startTime < window.__bench.first)
          rows.push([e.name.replace(location.origin, ''), e.startTime, e.responseStart, e.responseEnd, e.transferSize]);
      rows.push(['(dom-content-loaded)', nav.domContentLoadedEventEnd, 0, 0, 0]);
      rows.push(['(first image)', window.__bench.first, 0, 0, 0]);
      return rows;
    }""")
    for name, start, first_byte, end, size in sorted(entries, key=lambda row: row[1]):
        short = name if len(name) < 70 else name[:34] + "..." + name[-33:]
        harness.log(f"  {start:7.0f} {first_byte:7.0f} {end:7.0f} ms {size / 1024:7.1f} KiB  {short}")


def scroll(page: Any, slices: int, rate: float) -> tuple[float, float, int]:
    """Press ArrowDown ``slices`` times at ``rate`` a second from where the viewer is: (frames
    displayed a second, seconds from the first key to the last slice shown, frames displayed)."""
    start = int(page.evaluate("() => document.querySelector('.ws-vp').dataset.frame"))
    page.evaluate("() => { window.__bench.frames = []; window.__bench.recording = true; }")
    began = page.evaluate("() => performance.now()")
    paced = time.monotonic()
    for k in range(slices):
        page.keyboard.press("ArrowDown")
        time.sleep(max(0.0, paced + (k + 1) / rate - time.monotonic()))  # a fixed rate, whatever a press costs
    target = str(start + slices)
    # Seen by the probe (at an animation frame), not only set: the figures are the probe's.
    wait(page, f"() => window.__bench.frames.some((f) => f[1] === '{target}')", "the last slice")
    frames = page.evaluate("() => { window.__bench.recording = false; return window.__bench.frames; }")
    shown = [f for f in frames if f[1]]
    changes = sum(1 for a, b in zip(shown, shown[1:], strict=False) if a[1] != b[1])
    ended = next(t for t, f in shown if f == target)
    seconds = (ended - began) / 1000
    return changes / seconds, seconds, changes


def settle(page: Any, quiet: float = 0.5) -> None:
    """Wait until the page has fetched nothing new for ``quiet`` seconds."""
    deadline, seen, since = time.monotonic() + TIMEOUT_S, -1, time.monotonic()
    while time.monotonic() - since < quiet:
        count = page.evaluate("() => performance.getEntriesByType('resource').filter((e) => e.responseEnd > 0).length")
        if count != seen:
            seen, since = count, time.monotonic()
        if time.monotonic() > deadline:
            raise BenchError(f"the page still fetching after {TIMEOUT_S:.0f} s")
        time.sleep(0.05)


def pin(pid: int, cpu: str) -> None:
    """Pin a process, its threads and its children (the service's helpers) to ``cpu``."""
    family = {pid}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) in family:
                    family.add(int(entry.name))
    for member in family:
        subprocess.run(["taskset", "-a", "-p", "-c", cpu, str(member)], capture_output=True, check=True)


def measure(
    chromium: Any, base: str, study: str, series: str, args: argparse.Namespace, label: str
) -> dict[str, float]:
    view = f"{base}/studies/{study}/view?series={series}"
    firsts, cold, warm, cold_s, warm_s, cold_n, warm_n = [], [], [], [], [], [], []
    for run in range(args.repeat):
        with session(chromium, base) as page:
            firsts.append(first_image(page, view))
            if args.timeline:
                timeline(page)
            rate, seconds, shown = scroll(page, args.slices, args.rate)
            cold.append(rate)
            cold_s.append(seconds)
            cold_n.append(shown)
            settle(page)  # "prefetched": the frames asked for ahead are all in
            page.keyboard.press("Home")
            wait(page, "() => document.querySelector('.ws-vp').dataset.frame === '1'", "the first slice again")
            rate, seconds, shown = scroll(page, args.slices, args.rate)
            warm.append(rate)
            warm_s.append(seconds)
            warm_n.append(shown)
        harness.log(
            f"{label} run {run + 1}: first {firsts[-1] * 1000:.0f} ms, cold {cold[-1]:.1f} fps, warm {warm[-1]:.1f} fps"
        )
    print(
        f"{label:<16} first-image  median={median(firsts) * 1000:7.0f} ms  max={max(firsts) * 1000:7.0f} ms", flush=True
    )
    print(f"{label:<16} scroll-cold  median={median(cold):7.1f} frames/s  {median(cold_n):.0f} of {args.slices} slices shown in {median(cold_s):.2f} s",
          flush=True)  # fmt: skip
    print(f"{label:<16} scroll-warm  median={median(warm):7.1f} frames/s  {median(warm_n):.0f} of {args.slices} slices shown in {median(warm_s):.2f} s",
          flush=True)  # fmt: skip
    figures = {"first": median(firsts)}
    if args.ohif:
        ohif_firsts = []
        for _ in range(args.repeat):
            with session(chromium, base) as page:
                ohif_firsts.append(first_image(page, f"{base}/ohif/viewer?StudyInstanceUIDs={study}"))
        figures["ohif"] = median(ohif_firsts)
        print(f"{label:<16} ohif-first   median={figures['ohif'] * 1000:7.0f} ms  max={max(ohif_firsts) * 1000:7.0f} ms",
              flush=True)  # fmt: skip
        print(f"ratio lightbox/ohif {label:<10} first-image {figures['first'] / figures['ohif']:.2f}", flush=True)
    return figures


def benchmark(args: argparse.Namespace) -> None:
    servers.check_lightbox_importable()
    if args.ohif and not (OHIF_PREPARED / "ohif").exists():
        raise BenchError(f"OHIF is not installed in {OHIF_PREPARED}: run `lightbox ohif install --data {OHIF_PREPARED}` "
                         "(or --no-ohif)")  # fmt: skip
    ct = corpus.ct_series(args.ct_slices, np.random.default_rng(1))
    first = pydicom.dcmread(ct.files[0], stop_before_pixels=True)
    study, series = str(first.StudyInstanceUID), str(first.SeriesInstanceUID)
    harness.log(f"load average {os.getloadavg()[0]:.2f}; {len(ct)} slices, {ct.total_bytes / harness.MB:.0f} MB")
    with harness.workdir("viewer", args) as workdir:
        data = workdir / "lightbox-data"
        servers.lightbox_import(data, ct.dicom_dir, workdir / "import.log")
        servers.lightbox_cli("user", "add", USER, "--role", "viewer", "--password-stdin", "--data", str(data),
                             stdin=PASSWORD + "\n")  # fmt: skip
        if args.ohif:
            (data / "ohif").symlink_to((OHIF_PREPARED / "ohif").resolve())
        with browser() as chromium:
            for label, cpus in (("lightbox", ""), ("lightbox-1cpu", "0")):
                with servers.lightbox_server(workdir, label, data) as server:
                    if cpus:
                        pin(server.proc.pid, cpus)
                    measure(chromium, f"http://127.0.0.1:{server.http_port}", study, series, args, label)
    harness.log(f"load average {os.getloadavg()[0]:.2f}")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = harness.parser("viewer", __doc__.split("\n")[0], netns=False)
    parser.add_argument("--ct-slices", type=int, default=500, help="slices of the CT series (default 500)")
    parser.add_argument("--slices", type=int, default=100, help="slices scrolled through (default 100)")
    parser.add_argument("--rate", type=float, default=60.0, help="ArrowDown presses a second (default 60)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each figure (default 3)")
    parser.add_argument("--timeline", action="store_true",
                        help="log each run's resources up to the first image (start, first byte, end)")  # fmt: skip
    parser.add_argument("--no-ohif", dest="ohif", action="store_false", help="Lightbox's viewer alone")
    harness.add_workdir(parser)
    args = parser.parse_args(argv)
    if not 0 < args.slices < args.ct_slices or args.rate <= 0 or args.repeat < 1:
        parser.error("need 0 < --slices < --ct-slices, --rate > 0, --repeat >= 1")
    return args


if __name__ == "__main__":
    sys.exit(harness.run("viewer", sys.argv[1:], parse_args, benchmark, netns=False))
