"""Write workflows/*.json (UI format) and workflows/api/*.json (API format) from
tools/workflow_graphs.py.

    python tools/build_workflows.py            # rewrite the files
    python tools/build_workflows.py --check    # exit 1 if the files differ from the graphs

Node specs come in /object_info form: ours from INPUT_TYPES (through the host double in
tests/comfy_double), ComfyUI's own from tests/data/native_nodes.json, a snapshot of a real
ComfyUI's /object_info for the native nodes the workflows use."""
from __future__ import annotations

import argparse
import json
import math
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
from workflow_graphs import NOTES, TITLES, WORKFLOWS, stage  # noqa: E402
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# Where the frontend can offer to download the native models the workflows name.
MODEL_URLS = {
    "wan2.2_vae.safetensors": ("https://huggingface.co/Comfy-Org/Wan_2.2_ComfyUI_Repackaged/resolve/main/"
                               "split_files/vae/wan2.2_vae.safetensors", "vae"),
    "umt5_xxl_fp8_e4m3fn_scaled.safetensors": ("https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/"
                                               "main/split_files/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                                               "text_encoders"),
}


def our_specs() -> dict:
    sys.path[:0] = [str(REPO / "tests" / "comfy_double"), str(REPO)]
    import folder_paths
    import nodes
    folder_paths.reset(REPO / "build" / "no-models")
    nodes.register_folders()
    specs = {}
    for name, cls in nodes.NODE_CLASS_MAPPINGS.items():
        spec = cls.INPUT_TYPES()
        specs[name] = {
            "input": {k: {n: list(v) for n, v in spec.get(k, {}).items()} for k in ("required", "optional")},
            "input_order": {k: list(spec.get(k, {})) for k in ("required", "optional")},
            "output": list(cls.RETURN_TYPES), "output_name": list(cls.RETURN_NAMES),
            "display_name": nodes.NODE_DISPLAY_NAME_MAPPINGS[name], "python_module": "custom_nodes.ComfyUI-UniAVGen",
        }
    return specs


def all_specs() -> dict:
    native = json.loads((REPO / "tests" / "data" / "native_nodes.json").read_text())
    return {**native, **our_specs()}


def input_spec(spec: dict, name: str):
    for section in ("required", "optional"):
        if name in spec["input"].get(section, {}):
            return spec["input"][section][name]
    raise KeyError(name)


def input_names(spec: dict) -> list[str]:
    return spec["input_order"].get("required", []) + spec["input_order"].get("optional", [])


def kind(entry) -> str:
    t = entry[0]
    return "COMBO" if isinstance(t, list) else t


def options(entry) -> dict:
    return entry[1] if len(entry) > 1 else {}


def is_widget(entry) -> bool:
    return kind(entry) in WIDGET_TYPES


def to_api(graph: dict, specs: dict) -> dict:
    api = {}
    for node_id, (cls, inputs) in sorted(graph.items()):
        values = {k: [str(v[0]), v[1]] if isinstance(v, tuple) else v for k, v in inputs.items()}
        title = TITLES.get(cls, {}).get(node_id) or specs[cls].get("display_name", cls)
        api[str(node_id)] = {"class_type": cls, "inputs": values, "_meta": {"title": title}}
    return api


def _depths(graph: dict) -> dict:
    depth = {}

    def visit(n):
        if n not in depth:
            sources = [v[0] for v in graph[n][1].values() if isinstance(v, tuple)]
            depth[n] = 1 + max((visit(s) for s in sources), default=-1)
        return depth[n]
    for n in graph:
        visit(n)
    return depth


# ---- Layout, in canvas units (the frontend's "pixels" at zoom 1) ----
# The first screen a new user sees: a 1280 x 800 browser window, measured in the real frontend at 1.27.10 (ComfyUI
# 0.3.64's) and 1.58.1 (the newest on PyPI when measured). `origin`: where the graph canvas starts in the window;
# `covered`: what the frontend draws over the canvas there, as window rectangles (x0, y0, x1, y1): menu bar, workflow
# tabs, side bar, the "Graph" and Run buttons, the minimap (open by default in both) and the zoom buttons below it,
# Every node must lie in the window, clear of all of them, in both. (1.27's canvas info, a few lines of small
# translucent text at the bottom left, is drawn over the graph and left out.)
WINDOW = (1280, 800)
FRONTENDS = {
    "1.27.10": {"origin": (40, 40), "covered": [(0, 0, 1280, 80), (0, 0, 46, 800), (980, 528, 1242, 740),
                                                (950, 734, 1270, 790)]},
    "1.58.1": {"origin": (0, 0), "covered": [(0, 0, 1280, 40), (0, 0, 60, 800), (56, 38, 215, 90),
                                             (920, 44, 1235, 90), (1013, 532, 1278, 744), (1024, 740, 1280, 800)]},
}
MARGIN = (64, 91)            # where the graph's (0, 0) lands in the 1.58 window (40 px further in 1.27's)
# Below about 0.57 the frontend draws nodes as blank boxes (8 px minimum font / 14 px node text), so workflows open
# at the largest of these zooms that shows the whole graph in the first screen.
ZOOMS = (0.8, 0.75, 0.7, 0.65, 0.6)
MESSAGE_FONT = 20            # the message boxes' font (web/uniavgen_messages.js): >= 12 px on screen at 0.6
GAP = 16                     # between nodes and between groups
GROUP_PAD, GROUP_TITLE = 6, 36        # group title bar: 24 px font, drawn 34 high
NODE_TITLE = 30              # the frontend draws a node's title bar above its pos, outside its size
# A node's body as the frontend computes it (LGraphNode.computeSize, measured in both versions): 6 + 20 per slot
# row + 24 per widget + 8 under the widgets. Larger widgets: their heights (with the 4 between widgets).
SLOT_H, WIDGET_H = 20, 24
TALL_WIDGETS = {"audioUI": 58}
TEXT_BOX = {"UniAVGenSpeechText": 64, "CLIPTextEncode": 84, "UniAVGenCaptionEncode": 84}   # multi-line text boxes
NEGATIVE_TEXT_BOX = 58       # an empty negative caption
# Room under the widgets that the frontend fills after loading or running: the picture of Load Image, the player
# of Load Video, the video of Save Video (square outputs, as wide as the node), the Sampler's message ("task: AVG",
# one line at MESSAGE_FONT).
PREVIEW_H = {"LoadImage": 232, "LoadVideo": 322}
# The Sampler: room for its widest widget row, and narrow enough that the long form's two samplers side by side at
# zoom 0.6 stay left of 1.27's minimap (at 249 or more they reach it).
WIDTH = {"LoadVideo": 330, "SaveVideo": 220, "UniAVGenSampler": 240, "UniAVGenExtend": 240,
         "UniAVGenLongSampler": 240, "UniAVGenSpeechText": 270,
         "CLIPTextEncode": 270, "UniAVGenCaptionEncode": 270, "UniAVGenReferenceImage": 260, "LoadImage": 230,
         "CreateVideo": 220, "SaveAudio": 240, "UniAVGenAudioEncode": 260, "UniAVGenVideoEncode": 260}
PLUMBING_W = 200             # nodes without widgets (VAE Decode, Audio Decode, Join Clips...)
HIDDEN_ROW = 16              # what a hidden widget (short_side) still adds to the frontend's computed height
# The frontend widens a node to its title: 14 px text, about 7.5 px a character, plus 20.
VIDEO_PREVIEW_MARGIN = 4     # Save Video's preview: a square as wide as the node, less this
MESSAGE_ROOM = {"UniAVGenSampler": 60,      # one line ("task: AVG"); the frontend grows it by 4 more: fine
                "UniAVGenExtend": 60, "UniAVGenLongSampler": 60,
                "UniAVGenModelLoader": 84}  # two lines ("trained on 3.06 s clips (49 frames)")
# Notes: the frontend's Markdown at 10 px (its default text size), fitted to what both frontends draw: about
# 4.8 px a character, 12 px a line, paragraphs 10 px apart, the heading 24 px, code in 6 px characters.
NOTE_W = 340
# The long form has too many nodes to show open at a readable zoom: its plumbing (nodes without settings to change,
# and Create Video, whose fps must stay 16) opens collapsed to its title bar, which the frontend draws about
# 7.5 px a character of title + 60 wide (min(size, measured title + 2 x 30)).
COLLAPSED = {"uniavgen_long_extend": {"VAEDecode", "UniAVGenAudioDecode", "CreateVideo"}}
TITLE_CHAR = 7.5
NOTE_CHAR, NOTE_LINE, NOTE_PARA, NOTE_HEAD, NOTE_CODE_CHAR, NOTE_PAD = 4.8, 12, 10, 24, 6.0, 14


def visible_widgets(cls: str, spec: dict, inputs: dict) -> list[str]:
    """The widget names the frontend draws for this node: short_side only with resolution 'short side' (the web
    extension hides it otherwise)."""
    names = [n for n in input_names(spec) if is_widget(input_spec(spec, n))]
    if "short_side" in names and inputs.get("resolution", "short side") != "short side":
        names.remove("short_side")
    return names


def node_size(cls: str, spec: dict, ui_inputs: list, inputs: dict, title: str) -> list[int]:
    """The node's body (title bar excluded): what the frontend computes for it, with room for its text boxes,
    previews and the Sampler's message, so nothing overflows or grows after a run."""
    rows = max(len([i for i in ui_inputs if "widget" not in i]), len(spec["output"]))
    height = 6 + SLOT_H * rows
    widgets = visible_widgets(cls, spec, inputs)
    for n in widgets:
        entry = input_spec(spec, n)
        opts = options(entry)
        if opts.get("multiline"):
            height += NEGATIVE_TEXT_BOX if inputs.get(n) == "" and cls != "UniAVGenSpeechText" else TEXT_BOX[cls]
        else:
            height += WIDGET_H * (2 if opts.get("control_after_generate") or opts.get("image_upload")
                                  or opts.get("audio_upload") or opts.get("video_upload") else 1)
        if opts.get("audio_upload"):
            height += TALL_WIDGETS["audioUI"]
    if cls == "SaveAudio":
        height += TALL_WIDGETS["audioUI"]
    height += 8 if widgets else 0
    if len(widgets) < len([n for n in input_names(spec) if is_widget(input_spec(spec, n))]):
        height += HIDDEN_ROW
    width = max(WIDTH.get(cls, 260 if widgets else PLUMBING_W), math.ceil(len(title) * TITLE_CHAR + 20))
    height += PREVIEW_H.get(cls, 0) + MESSAGE_ROOM.get(cls, 0)
    if cls == "SaveVideo":
        height += width - VIDEO_PREVIEW_MARGIN
    return [width, height]


def note_height(text: str, width: int) -> int:
    """The height the frontend's Markdown needs for `text` in a note `width` wide (see NOTE_CHAR...)."""
    per_line = (width - 2 * NOTE_PAD) / NOTE_CHAR
    height, in_code = 2 * NOTE_PAD, False
    for block in text.split("\n\n"):
        lines = block.split("\n")
        for line in lines:
            if line.startswith("```"):
                in_code = not in_code
                continue
            if line.startswith("## "):
                height += NOTE_HEAD
            elif in_code:
                height += NOTE_LINE * math.ceil(len(line) * NOTE_CODE_CHAR / (width - 2 * NOTE_PAD - 16))
            else:
                height += NOTE_LINE * max(1, math.ceil(len(line.replace("**", "").replace("`", "")) / per_line))
        height += NOTE_PARA
    return int(math.ceil(height / 10) * 10)


def _node(node_id, cls, inputs, spec, title, slots):
    title = title or spec.get("display_name", cls)
    ui_inputs, widgets = [], []
    for n in input_names(spec):
        entry = input_spec(spec, n)
        widget, value = is_widget(entry), inputs.get(n)
        linked = isinstance(value, tuple)
        if linked or not widget:
            slot = {"name": n, "type": kind(entry), "link": None}
            if widget:
                slot["widget"] = {"name": n}
            slots[(node_id, n)] = len(ui_inputs)
            ui_inputs.append(slot)
        if widget:
            opts = options(entry)
            widgets.append(opts.get("default") if value is None or linked else value)
            if opts.get("control_after_generate"):
                widgets.append("fixed")
            if opts.get("image_upload"):
                widgets.append("image")
    props = {"Node name for S&R": cls, "cnr_id": "comfyui-uniavgen" if cls.startswith("UniAVGen") else "comfy-core"}
    models = [{"name": v, "url": MODEL_URLS[v][0], "directory": MODEL_URLS[v][1]}
              for v in inputs.values() if isinstance(v, str) and v in MODEL_URLS]
    if models:
        props["models"] = models
    return {"id": node_id, "type": cls, "pos": [0, 0], "size": node_size(cls, spec, ui_inputs, inputs, title),
            "flags": {}, "order": 0, "mode": 0, "inputs": ui_inputs,
            "outputs": [{"name": spec["output_name"][i], "type": t, "links": [], "slot_index": i}
                        for i, t in enumerate(spec["output"])],
            "title": title, "properties": props, "widgets_values": widgets}


def drawn_size(node: dict) -> list[float]:
    """The body a node is drawn with: its size, or no body and the title's width when collapsed."""
    if node.get("flags", {}).get("collapsed"):
        return [min(node["size"][0], math.ceil(len(node["title"]) * TITLE_CHAR + 2 * NODE_TITLE)), 0]
    return node["size"]


def bounding(node: dict) -> list[float]:
    """[x, y, w, h] of a node as drawn, title bar included."""
    x, y = node["pos"]
    w, h = drawn_size(node)
    return [x, y - NODE_TITLE, w, h + NODE_TITLE]


def screen_rect(box, zoom: float, offset, origin) -> tuple[float, float, float, float]:
    x, y, w, h = box
    return (origin[0] + (x + offset[0]) * zoom, origin[1] + (y + offset[1]) * zoom,
            origin[0] + (x + w + offset[0]) * zoom, origin[1] + (y + h + offset[1]) * zoom)


def offset_for(zoom: float) -> list[float]:
    return [round(MARGIN[0] / zoom, 2), round(MARGIN[1] / zoom, 2)]


def _free_bottom(x0: float, x1: float, zoom: float) -> float:
    """The lowest canvas y a node spanning canvas x0..x1 may reach at `zoom`, in every frontend."""
    offset, bottom = offset_for(zoom), math.inf
    for fe in FRONTENDS.values():
        ox, oy = fe["origin"]
        left, right = ox + (x0 + offset[0]) * zoom, ox + (x1 + offset[0]) * zoom
        limit = WINDOW[1] - 4
        for cx0, cy0, cx1, cy1 in fe["covered"]:
            if cy0 > WINDOW[1] / 2 and left < cx1 and cx0 < right:
                limit = min(limit, cy0 - 4)
        bottom = min(bottom, (limit - oy) / zoom - offset[1])
    return bottom


def _free_right(zoom: float) -> float:
    offset = offset_for(zoom)
    return min((WINDOW[0] - 8 - fe["origin"][0]) / zoom - offset[0] for fe in FRONTENDS.values())


def _pack(nodes: dict, members: dict, depth: dict, x0: float, y0: float, zoom: float, bottom=math.inf):
    """Stages left to right from (x0, y0); each stage's nodes fill columns top to bottom (in flow order), a new
    column when the next node would reach under the free area (above the minimap, above `bottom`). Returns the
    groups' boxes, or None when a node cannot fit at all."""
    groups, x = {}, x0
    for title, ids in members.items():
        cx, cy, col_w, low = x + GROUP_PAD, y0 + GROUP_TITLE + NODE_TITLE, 0, y0
        for n in sorted(ids, key=lambda n: (depth[n], n)):
            w, h = drawn_size(nodes[n])
            wide = max(col_w, w)
            if col_w and cy + h > min(bottom, _free_bottom(cx, cx + wide, zoom)):
                cx, cy, col_w, wide = cx + col_w + GAP, y0 + GROUP_TITLE + NODE_TITLE, 0, w
            if cy + h > min(bottom, _free_bottom(cx, cx + w, zoom)):
                return None
            nodes[n]["pos"] = [cx, cy]
            low = max(low, cy + h)
            cy += h + GAP + NODE_TITLE
            col_w = wide
        right = cx + col_w + GROUP_PAD
        groups[title] = [x, y0, right - x, low + GROUP_PAD - y0]
        x = right + GAP
    return groups


def _layout(nodes: dict, members: dict, depth: dict, note: dict, zoom: float):
    """The note at the top left with the first stage (the loaders) under it; the other stages left to right in rows
    beside it, a new row under the previous when a stage does not fit (clip 2 of the long form always starts one).
    The first row's height is tried from tall to short. Returns the groups' boxes, or None if nothing fits."""
    first = next(iter(members))
    note["pos"] = [0, NODE_TITLE]
    right = _free_right(zoom)
    for split in (math.inf, *(_free_bottom(0, 1, zoom) * (90 - f) / 100 for f in range(0, 50, 2))):
        boxes = _pack(nodes, {first: members[first]}, depth, 0, note["pos"][1] + note["size"][1] + GAP, zoom)
        if boxes is None:
            return None
        column_low = boxes[first][1] + boxes[first][3]
        left = boxes[first][0] + max(boxes[first][2], note["size"][0]) + GAP
        x, top, low = left, 0, 0
        for title in [t for t in members if t != first]:
            placed = None
            if not title.startswith("Clip 2") or x == left:
                placed = _pack(nodes, {title: members[title]}, depth, x, top, zoom, split if top == 0 else math.inf)
            if placed is None or placed[title][0] + placed[title][2] > right:
                top = low + GAP
                x = left if top < column_low else 0
                placed = _pack(nodes, {title: members[title]}, depth, x, top, zoom)
                if placed is None or placed[title][0] + placed[title][2] > right:
                    break
            boxes.update(placed)
            x = placed[title][0] + placed[title][2] + GAP
            low = max(low, placed[title][1] + placed[title][3])
        else:
            return boxes
    return None


def to_ui(graph: dict, specs: dict, name: str) -> dict:
    depth = _depths(graph)
    slots = {}                                     # (node, input name) -> slot in the node's inputs list
    nodes = {node_id: _node(node_id, cls, inputs, specs[cls], TITLES.get(cls, {}).get(node_id), slots)
             for node_id, (cls, inputs) in sorted(graph.items())}
    links, link_id = [], 0
    for node_id, (cls, inputs) in sorted(graph.items()):
        for n, v in inputs.items():
            if isinstance(v, tuple):
                link_id += 1
                source, out = v
                link_type = specs[graph[source][0]]["output"][out]
                links.append([link_id, source, out, node_id, slots[(node_id, n)], link_type])
                nodes[node_id]["inputs"][slots[(node_id, n)]]["link"] = link_id
                nodes[source]["outputs"][out]["links"].append(link_id)
    for n in nodes.values():
        if n["type"] in COLLAPSED.get(name, ()):
            n["flags"] = {"collapsed": True}
    members: dict[str, list] = {}
    for node_id, (cls, _) in sorted(graph.items()):
        members.setdefault(stage(name, node_id, cls), []).append(node_id)
    for order, n in enumerate(sorted(nodes.values(), key=lambda n: (depth[n["id"]], n["id"]))):
        n["order"] = order
    note_id = max(graph) + 1
    note = {"id": note_id, "type": "MarkdownNote", "pos": [0, 0], "size": [NOTE_W, note_height(NOTES[name], NOTE_W)],
            "flags": {}, "order": len(nodes), "mode": 0, "inputs": [], "outputs": [], "title": "Read me",
            "properties": {}, "widgets_values": [NOTES[name]], "color": "#432", "bgcolor": "#653"}
    for zoom in ZOOMS:
        boxes = _layout(nodes, members, depth, note, zoom)
        if boxes is not None:
            break
    else:
        raise SystemExit(f"{name}: the graph does not fit in the first screen even at zoom {ZOOMS[-1]}")
    groups = [{"id": i + 1, "title": title, "bounding": box, "color": "#3f789e", "font_size": 24, "flags": {}}
              for i, (title, box) in enumerate(boxes.items())]
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"comfyui-uniavgen/{name}")), "revision": 0,
            "last_node_id": note_id, "last_link_id": link_id, "nodes": list(nodes.values()) + [note],
            "links": links, "groups": groups, "config": {},
            "extra": {"ds": {"scale": zoom, "offset": offset_for(zoom)}}, "version": 0.4}


def render() -> dict[Path, str]:
    specs = all_specs()
    files = {}
    for name, (title, build) in WORKFLOWS.items():
        graph = build()
        files[REPO / "workflows" / f"{title}.json"] = json.dumps(to_ui(graph, specs, name), indent=1) + "\n"
        files[REPO / "workflows" / "api" / f"{name}.json"] = json.dumps(to_api(graph, specs), indent=1) + "\n"
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args()
    stale = []
    for path, text in render().items():
        if not path.is_file() or path.read_text() != text:
            stale.append(path)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    for p in stale:
        print(("stale: " if args.check else "wrote: ") + str(p.relative_to(REPO)))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
