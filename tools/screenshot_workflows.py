"""Open every shipped workflow in the real ComfyUI frontend, as a new user sees it, and check it.

    python tools/screenshot_workflows.py URL OUT_DIR [--run-mini] [--docs] [--chromium PATH]

URL is a running ComfyUI with the pack installed (e.g. http://127.0.0.1:8198), with whatever frontend it serves
(--front-end-root picks another). In a 1280 x 800 window with the frontend's default settings (minimap open),
each UI workflow in workflows/ is loaded and OUT_DIR/<frontend version>-<title>.png is written. Checked, from the
frontend itself: the zoom and offset are the saved ones, every node's drawn box lies in the window clear of the
side bar, tabs, buttons and minimap (their boxes are read from the page), no node is resized by the frontend on
load, no node overlaps a group's title bar, and the note's text fits its note without leaving a third of it empty.
--run-mini then runs the mini demo and checks the message boxes (font on screen >= 12 px, no text cut off) and that
the video preview lies inside its node and group. --docs writes docs/workflow_avg.png and
docs/workflow_long_form.png (the long-talk template; and docs/node_messages.png with --run-mini). Browser console
lines that mention UniAVGen or deprecation are listed.
Prints a JSON report; exits 1 if a check fails. Needs `pip install playwright pillow` and a Chromium (--chromium,
default /usr/bin/chromium). Where no browser can be downloaded, the npm registry's @sparticuz/chromium package
carries a headless Chromium: decompress its bin/*.br files (brotli) and pass a small script as --chromium that
puts its lib folder on LD_LIBRARY_PATH, its fonts on FONTCONFIG_PATH and adds --single-process --no-zygote.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from playwright.async_api import async_playwright

REPO = Path(__file__).resolve().parents[1]
WINDOW = {"width": 1280, "height": 800}
DOCS = {"2. Talking video with its speech (AVG)": "workflow_avg.png",
        "6. Long talk from a transcript (Long Sampler)": "workflow_long_form.png"}
MINI = "1. Mini demo, nothing to download"
# What the frontend draws over the canvas (1.27 and 1.58 class names), read from the page for each version.
COVERS = (".comfyui-menu, .workflow-tabs-container, .side-tool-bar-container, .actionbar, .minimap-main-container, "
          ".graph-canvas-menu, .p-buttongroup-vertical, .zoom-controls-container, .subgraph-breadcrumb, "
          "[class*=bottom-panel-toolbar], [data-testid=graph-canvas-toolbar], .canvas-toolbar")

READ_PAGE = """() => {
  const rect = e => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
  const canvas = app.canvas.canvas.getBoundingClientRect();
  const ds = app.canvas.ds;
  const toScreen = ([x, y, w, h]) => [canvas.left + (x + ds.offset[0]) * ds.scale,
    canvas.top + (y + ds.offset[1]) * ds.scale, canvas.left + (x + w + ds.offset[0]) * ds.scale,
    canvas.top + (y + h + ds.offset[1]) * ds.scale];
  const nodes = app.graph._nodes.map(n => {
    const b = new Float32Array(4); n.getBounding(b);
    return {id: n.id, type: n.type, title: n.title, size: [...n.size], screen: toScreen([...b])};
  });
  const groups = app.graph._groups.map(g => ({title: g.title, screen: toScreen([...g._bounding]),
    title_bar: toScreen([g._bounding[0], g._bounding[1], g._bounding[2], g.titleHeight])}));
  const covers = [...document.querySelectorAll(COVERS)].filter(e => {
    const s = getComputedStyle(e); const b = e.getBoundingClientRect();
    return s.display !== 'none' && s.visibility !== 'hidden' && b.width > 0 && b.height > 0;
  }).map(e => ({what: String(e.className).slice(0, 40), box: rect(e)}));
  const notes = [...document.querySelectorAll('.comfy-markdown')].map(e => {
    const inner = e.querySelector('.tiptap, .ProseMirror') || e;
    let used = 0; for (const c of inner.children) used = Math.max(used, c.offsetTop + c.offsetHeight);
    return {scroll: e.scrollHeight, client: e.clientHeight, used: used};
  });
  const messages = [...document.querySelectorAll('.uniavgen-messages')].map(e => ({
    text: e.textContent, font_px: parseFloat(getComputedStyle(e).fontSize) * ds.scale,
    scroll: e.scrollHeight, client: e.clientHeight, visible: e.offsetParent !== null}));
  const videos = [...document.querySelectorAll('video')].filter(v => v.offsetParent !== null).map(rect);
  return {version: window.__COMFYUI_FRONTEND_VERSION__, scale: ds.scale, offset: [...ds.offset],
          canvas: rect(app.canvas.canvas), nodes, groups, covers, notes, messages, videos};
}""".replace("COVERS", json.dumps(COVERS))


def overlaps(a, b, slack=0.5) -> bool:
    return a[0] < b[2] - slack and b[0] < a[2] - slack and a[1] < b[3] - slack and b[1] < a[3] - slack


def inside(a, b, slack=1.0) -> bool:
    return a[0] >= b[0] - slack and a[1] >= b[1] - slack and a[2] <= b[2] + slack and a[3] <= b[3] + slack


def check_view(page: dict, saved: dict) -> list[str]:
    problems = []
    if abs(page["scale"] - saved["extra"]["ds"]["scale"]) > 1e-6:
        problems.append(f"opened at zoom {page['scale']}, saved {saved['extra']['ds']['scale']}")
    sizes = {n["id"]: n["size"] for n in saved["nodes"]}
    window = (0, 0, WINDOW["width"], WINDOW["height"])
    for n in page["nodes"]:
        if not inside(n["screen"], window):
            problems.append(f"{n['title']}: outside the window {[round(v) for v in n['screen']]}")
        for c in page["covers"]:
            if overlaps(n["screen"], c["box"]):
                problems.append(f"{n['title']}: under {c['what']!r} {[round(v) for v in c['box']]}")
        for g in page["groups"]:
            if overlaps(n["screen"], g["title_bar"]):
                problems.append(f"{n['title']}: over the title of group {g['title']!r}")
        if n["id"] in sizes and any(abs(a - b) > 1 for a, b in zip(n["size"], sizes[n["id"]])):
            problems.append(f"{n['title']}: the frontend resized it from {sizes[n['id']]} to {n['size']}")
    for note in page["notes"]:
        if note["scroll"] > note["client"] + 1:
            problems.append(f"note text cut off: needs {note['scroll']} px, has {note['client']}")
        if note["used"] and note["used"] < 0.67 * note["client"]:
            problems.append(f"note a third or more empty: text {note['used']} px of {note['client']}")
    return problems


def check_run(page: dict) -> list[str]:
    problems = []
    if not page["messages"]:
        problems.append("no message box after the run")
    for m in page["messages"]:
        if m["font_px"] < 12:
            problems.append(f"message {m['text'][:40]!r} at {m['font_px']:.1f} px on screen")
        if m["scroll"] > m["client"] + 1:
            problems.append(f"message {m['text'][:40]!r} cut off: {m['scroll']} px in {m['client']}")
    saves = [n for n in page["nodes"] if n["type"] == "SaveVideo"]
    if not page["videos"]:
        problems.append("no video preview after the run")
    for video in page["videos"]:
        if not any(inside(video, n["screen"], 4) for n in saves):
            problems.append(f"video preview {[round(v) for v in video]} sticks out of its node")
        if not any(inside(video, g["screen"], 4) for g in page["groups"]):
            problems.append(f"video preview {[round(v) for v in video]} sticks out of its group")
    return problems


async def open_workflow(pg, workflow: dict) -> None:
    await pg.evaluate("wf => window.app.loadGraphData(wf)", workflow)
    await pg.wait_for_timeout(1500)
    for _ in range(2):                                   # close dialogs (missing models) as a user would
        await pg.keyboard.press("Escape")
        await pg.wait_for_timeout(300)
    await pg.wait_for_timeout(800)


async def shoot(url: str, out: Path, chromium: str, run_mini: bool, docs: bool) -> dict:
    report = {"workflows": {}, "console": []}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        pg = await browser.new_page(viewport=WINDOW)
        pg.on("console", lambda m: report["console"].append(f"{m.type}: {m.text}"))
        await pg.goto(url)
        await pg.wait_for_function("window.app && window.app.graph && window.app.canvas", timeout=120_000)
        await pg.wait_for_timeout(4000)
        for path in sorted((REPO / "workflows").glob("*.json")):
            workflow = json.loads(path.read_text())
            await open_workflow(pg, workflow)
            page = await pg.evaluate(READ_PAGE)
            report["version"] = page["version"]
            shot = out / f"{page['version']}-{path.stem}.png"
            await pg.screenshot(path=str(shot))
            entry = {"zoom": page["scale"], "screenshot": str(shot), "problems": check_view(page, workflow)}
            if docs and path.stem in DOCS:
                await pg.screenshot(path=str(REPO / "docs" / DOCS[path.stem]))
            if run_mini and path.stem == MINI:
                await pg.evaluate("() => app.queuePrompt(0, 1)")
                await pg.wait_for_function("document.querySelector('.uniavgen-messages') && "
                                           "[...document.querySelectorAll('video')].some(v => v.offsetParent)",
                                           timeout=600_000, polling=1000)
                await pg.wait_for_timeout(2500)
                page = await pg.evaluate(READ_PAGE)
                shot = out / f"{page['version']}-{path.stem}-after-run.png"
                await pg.screenshot(path=str(shot))
                entry.update(after_run=str(shot), messages=[m["text"] for m in page["messages"]],
                             problems=entry["problems"] + check_run(page) + check_view(page, workflow)[:0])
                if docs:
                    await pg.screenshot(path=str(REPO / "docs" / "node_messages.png"))
            report["workflows"][path.stem] = entry
        await browser.close()
    report["console"] = [line for line in report["console"]
                         if "uniavgen" in line.lower() or "deprecat" in line.lower() or "notice" in line.lower()]
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("out", type=Path)
    parser.add_argument("--run-mini", action="store_true", help="also run the mini demo and check its messages")
    parser.add_argument("--docs", action="store_true", help="write the README pictures in docs/")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report = asyncio.run(shoot(args.url.rstrip("/") + "/", args.out, args.chromium, args.run_mini, args.docs))
    print(json.dumps(report, indent=1))
    return 1 if any(e["problems"] for e in report["workflows"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
