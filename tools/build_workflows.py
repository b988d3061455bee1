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


# Layout, in canvas units. The frontend draws nodes as blank boxes below 0.6 zoom, so workflows open at 0.8.
ZOOM = 0.8
GAP = 40                     # between nodes and between groups
GROUP_PAD, GROUP_TITLE = 20, 50
SLOT_H, WIDGET_H, TITLE_H = 22, 26, 36
# Room the frontend adds under the widgets (previews, players) and minimum widths, as measured in it.
PREVIEW_H = {"LoadImage": 300, "LoadVideo": 440, "LoadAudio": 44, "SaveAudio": 20}
MIN_WIDTH = {"LoadVideo": 450}
NOTE_SIZE = (560, 300)


def node_size(cls: str, spec: dict, ui_inputs: list, widgets: int) -> list[int]:
    """Room for the node's slots, widgets, multi-line text boxes and previews, so nothing overflows."""
    multiline = sum(1 for n in input_names(spec) if options(input_spec(spec, n)).get("multiline"))
    slots = max(len([i for i in ui_inputs if "widget" not in i]), len(spec["output"]))
    height = TITLE_H + SLOT_H * slots + WIDGET_H * widgets + 90 * multiline + PREVIEW_H.get(cls, 0) + 10
    width = max(420 if multiline else 340, MIN_WIDTH.get(cls, 0))
    return [width, height]


def _node(node_id, cls, inputs, spec, title, slots):
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
    n_widgets = sum(1 for n in input_names(spec) if is_widget(input_spec(spec, n)))
    return {"id": node_id, "type": cls, "pos": [0, 0], "size": node_size(cls, spec, ui_inputs, n_widgets),
            "flags": {}, "order": 0, "mode": 0, "inputs": ui_inputs,
            "outputs": [{"name": spec["output_name"][i], "type": t, "links": [], "slot_index": i}
                        for i, t in enumerate(spec["output"])],
            "title": title or spec.get("display_name", cls), "properties": props, "widgets_values": widgets}


def _place(nodes: dict, members: dict, depth: dict, x0: float, y0: float) -> dict:
    """Lay out each stage's nodes in columns (one per depth inside the stage), stages left to right
    starting at (x0, y0); returns the groups' bounding boxes."""
    groups, x = {}, x0
    for title, ids in members.items():
        columns = {}
        for n in sorted(ids, key=lambda n: (depth[n], n)):
            columns.setdefault(depth[n], []).append(n)
        cx, bottom = x + GROUP_PAD, y0
        for col in columns.values():
            cy = y0 + GROUP_TITLE
            for n in col:
                nodes[n]["pos"] = [cx, cy]
                cy += nodes[n]["size"][1] + GAP
            bottom = max(bottom, cy - GAP)
            cx += max(nodes[n]["size"][0] for n in col) + GAP
        groups[title] = [x, y0, cx - GAP + GROUP_PAD - x, bottom + GROUP_PAD - y0]
        x = cx - GAP + GROUP_PAD + GAP
    return groups


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
    members: dict[str, list] = {}
    for node_id, (cls, _) in sorted(graph.items()):
        members.setdefault(stage(name, node_id, cls), []).append(node_id)
    rows = [{k: v for k, v in members.items() if not k.startswith("Clip 2")},
            {k: v for k, v in members.items() if k.startswith("Clip 2")}]
    top, boxes = GAP + NOTE_SIZE[1] + GAP, {}
    for row in rows:
        if row:
            placed = _place(nodes, row, depth, GAP, top)
            boxes.update(placed)
            top = max(y + h for _, y, _, h in placed.values()) + GAP
    for order, n in enumerate(sorted(nodes.values(), key=lambda n: (depth[n["id"]], n["id"]))):
        n["order"] = order
    note_id = max(graph) + 1
    note = {"id": note_id, "type": "MarkdownNote", "pos": [GAP, GAP], "size": list(NOTE_SIZE), "flags": {},
            "order": len(nodes), "mode": 0, "inputs": [], "outputs": [], "title": "Read me",
            "properties": {}, "widgets_values": [NOTES[name]], "color": "#432", "bgcolor": "#653"}
    groups = [{"id": i + 1, "title": title, "bounding": box, "color": "#3f789e", "font_size": 24, "flags": {}}
              for i, (title, box) in enumerate(boxes.items())]
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"comfyui-uniavgen/{name}")), "revision": 0,
            "last_node_id": note_id, "last_link_id": link_id, "nodes": list(nodes.values()) + [note],
            "links": links, "groups": groups, "config": {},
            "extra": {"ds": {"scale": ZOOM, "offset": [0, 0]}}, "version": 0.4}


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
