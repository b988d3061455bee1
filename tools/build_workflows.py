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
        api[str(node_id)] = {"class_type": cls, "inputs": values,
                             "_meta": {"title": specs[cls].get("display_name", cls)}}
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


def to_ui(graph: dict, specs: dict, name: str) -> dict:
    depth = _depths(graph)
    rows: dict[int, int] = {}
    links, nodes, link_id = [], [], 0
    slots = {}                                     # (node, input name) -> slot in the node's inputs list
    for node_id, (cls, inputs) in sorted(graph.items()):
        spec = specs[cls]
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
        row = rows.get(depth[node_id], 0)
        rows[depth[node_id]] = row + 1
        props = {"Node name for S&R": cls, "cnr_id": "comfyui-uniavgen" if cls.startswith("UniAVGen") else "comfy-core"}
        models = [{"name": v, "url": MODEL_URLS[v][0], "directory": MODEL_URLS[v][1]}
                  for v in inputs.values() if isinstance(v, str) and v in MODEL_URLS]
        if models:
            props["models"] = models
        nodes.append({"id": node_id, "type": cls, "pos": [40 + 420 * depth[node_id], 40 + 330 * row],
                      "size": [380, 290], "flags": {}, "order": 0, "mode": 0, "inputs": ui_inputs,
                      "outputs": [{"name": spec["output_name"][i], "type": t, "links": [], "slot_index": i}
                                  for i, t in enumerate(spec["output"])],
                      "title": spec.get("display_name", cls), "properties": props, "widgets_values": widgets})
    by_id = {n["id"]: n for n in nodes}
    for node_id, (cls, inputs) in sorted(graph.items()):
        for n, v in inputs.items():
            if isinstance(v, tuple):
                link_id += 1
                source, out = v
                link_type = specs[graph[source][0]]["output"][out]
                links.append([link_id, source, out, node_id, slots[(node_id, n)], link_type])
                by_id[node_id]["inputs"][slots[(node_id, n)]]["link"] = link_id
                by_id[source]["outputs"][out]["links"].append(link_id)
    for order, n in enumerate(sorted(nodes, key=lambda n: (depth[n["id"]], n["id"]))):
        n["order"] = order
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"comfyui-uniavgen/{name}")), "revision": 0, "last_node_id": max(graph), "last_link_id": link_id,
            "nodes": nodes, "links": links, "groups": [], "config": {},
            "extra": {"ds": {"scale": 0.55, "offset": [0, 0]}}, "version": 0.4}


def render() -> dict[Path, str]:
    sys.path.insert(0, str(REPO / "tools"))
    from workflow_graphs import WORKFLOWS
    specs = all_specs()
    files = {}
    for name, build in WORKFLOWS.items():
        graph = build()
        files[REPO / "workflows" / f"{name}.json"] = json.dumps(to_ui(graph, specs, name), indent=1) + "\n"
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
