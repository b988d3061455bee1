"""Screenshots of the shipped workflows as the real ComfyUI frontend draws them.

    python tools/screenshot_workflows.py URL [--chromium PATH]

URL is a running ComfyUI with the pack installed (e.g. http://127.0.0.1:8198). Each UI workflow in
workflows/ is loaded into the frontend at the zoom it is saved with; the view is written as the
template browser's thumbnail (workflows/<title>.jpg) and, for the workflows named in DOCS, as a PNG
in docs/. Needs `pip install playwright pillow` and a Chromium (--chromium, default /usr/bin/chromium).
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
from pathlib import Path

from PIL import Image
from playwright.async_api import async_playwright

REPO = Path(__file__).resolve().parents[1]
VIEW = {"width": 1600, "height": 1000}
CANVAS = (80, 100, 1600, 1000)          # the graph without the frontend's menus and side bar
THUMBNAIL = (640, 379)
DOCS = {"2. Talking video with its speech (AVG)": "workflow_avg.png",
        "6. Long form, two chained clips": "workflow_long_form.png"}
QUIET = {"Comfy.Minimap.Visible": False, "Comfy.NodeBadge.NodeSourceBadgeMode": "None",
         "Comfy.Graph.CanvasInfo": False}


async def shoot(url: str, chromium: str) -> list[Path]:
    written = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = await browser.new_page(viewport=VIEW)
        await page.goto(url)
        await page.wait_for_function("window.app && window.app.graph", timeout=120_000)
        await page.wait_for_timeout(3000)
        await page.evaluate("""async quiet => {
            for (const [k, v] of Object.entries(quiet)) {
                try { await window.app.extensionManager.setting.set(k, v); } catch (e) { console.log(k, e); }
            }}""", QUIET)
        for path in sorted((REPO / "workflows").glob("*.json")):
            workflow = json.loads(path.read_text())
            await page.evaluate("wf => window.app.loadGraphData(wf)", workflow)
            await page.wait_for_timeout(1500)
            for _ in range(2):                                   # close dialogs (missing models, tips)
                await page.keyboard.press("Escape")
                await page.wait_for_timeout(300)
            await page.evaluate("""ds => { const c = window.app.canvas.ds; c.scale = ds.scale;
                c.offset = [...ds.offset]; window.app.canvas.setDirty(true, true); }""", workflow["extra"]["ds"])
            await page.wait_for_timeout(1000)
            shot = Image.open(io.BytesIO(await page.screenshot())).convert("RGB")
            thumb = REPO / "workflows" / f"{path.stem}.jpg"
            shot.crop(CANVAS).resize(THUMBNAIL, Image.LANCZOS).save(thumb, quality=85)
            written.append(thumb)
            if path.stem in DOCS:
                shot.save(REPO / "docs" / DOCS[path.stem])
                written.append(REPO / "docs" / DOCS[path.stem])
        await browser.close()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    for path in asyncio.run(shoot(args.url.rstrip("/") + "/", args.chromium)):
        print("wrote", path.relative_to(REPO))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
