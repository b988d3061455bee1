"""The shipped workflows against the node definitions (ours and ComfyUI's own, from a real
/object_info snapshot), and the UI files against their API twins."""
import json
import struct
import sys

import pytest

from helpers import REPO

sys.path.insert(0, str(REPO / "tools"))
import build_workflows as bw  # noqa: E402
from workflow_graphs import DOWNLOADS, WORKFLOWS, mini_demo  # noqa: E402

API = sorted((REPO / "workflows" / "api").glob("*.json"))
UI = sorted((REPO / "workflows").glob("*.json"))
OUTPUT_NODES = {"SaveVideo", "SaveAudio", "SaveImage", "PreviewAudio", "PreviewImage"}


@pytest.fixture(scope="module")
def specs():
    return bw.all_specs()


def test_committed_files_are_what_the_graphs_build():
    rendered = bw.render()
    assert len(rendered) == 12 and len(API) == len(UI) == 6
    for path, text in rendered.items():
        assert path.read_text() == text, f"{path.name} is stale: run python tools/build_workflows.py"


def check_value(cls, name, entry, value):
    kind, opts = bw.kind(entry), bw.options(entry)
    where = f"{cls}.{name}={value!r}"
    if kind in ("INT", "FLOAT"):
        assert isinstance(value, (int, float)) and not isinstance(value, bool), where
        if kind == "INT":
            assert isinstance(value, int), where
        assert opts.get("min", value) <= value <= opts.get("max", value), where
    elif kind == "STRING":
        assert isinstance(value, str), where
    elif kind == "BOOLEAN":
        assert isinstance(value, bool), where
    elif kind == "COMBO":
        choices = entry[0] if isinstance(entry[0], list) else opts.get("options", [])
        assert isinstance(value, str) and value, where
        # an empty list or a downloaded model: a file list that depends on the installation
        if choices and value not in DOWNLOADS:
            assert value in choices, where


@pytest.mark.parametrize("path", API, ids=lambda p: p.stem)
def test_api_workflow_matches_node_definitions(path, specs):
    graph = json.loads(path.read_text())
    assert any(n["class_type"] in OUTPUT_NODES for n in graph.values())
    for node_id, node in graph.items():
        cls = node["class_type"]
        assert cls in specs, f"unknown node {cls}"
        spec = specs[cls]
        names = bw.input_names(spec)
        assert set(node["inputs"]) <= set(names), f"{cls}: unknown inputs {set(node['inputs']) - set(names)}"
        for name in spec["input_order"].get("required", []):
            assert name in node["inputs"], f"{node_id} {cls}: required input {name} missing"
        for name, value in node["inputs"].items():
            entry = bw.input_spec(spec, name)
            if isinstance(value, list):
                source, slot = value
                assert source in graph, f"{cls}.{name} links to missing node {source}"
                out_types = specs[graph[source]["class_type"]]["output"]
                assert slot < len(out_types)
                want = "COMBO" if isinstance(entry[0], list) else entry[0]
                assert out_types[slot] == want or want == "*", f"{cls}.{name}: {out_types[slot]} into {want}"
            else:
                check_value(cls, name, entry, value)


FRONTEND_ONLY = {"Note", "MarkdownNote"}        # drawn by the frontend, left out of the API export


def ui_to_api(ui, specs):
    """What the frontend's 'Export (API)' makes of a UI workflow."""
    links = {link[0]: link for link in ui["links"]}
    by_id = {node["id"]: node["type"] for node in ui["nodes"]}
    graph = {}
    for node in ui["nodes"]:
        if node["type"] in FRONTEND_ONLY:
            continue
        spec = specs[node["type"]]
        inputs, values = {}, iter(node["widgets_values"])
        for name in bw.input_names(spec):
            entry = bw.input_spec(spec, name)
            if bw.is_widget(entry):
                value = next(values)
                if bw.options(entry).get("control_after_generate") or bw.options(entry).get("image_upload"):
                    next(values)
                inputs[name] = value
        for slot in node["inputs"]:
            if slot["link"] is not None:
                _, source, out, _, _, link_type = links[slot["link"]]
                inputs[slot["name"]] = [str(source), out]
                assert link_type == specs[by_id[source]]["output"][out]
        graph[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return graph


TWINS = {title: name for name, (title, _) in WORKFLOWS.items()}


@pytest.mark.parametrize("path", UI, ids=lambda p: p.stem)
def test_ui_workflow_is_its_api_twin(path, specs):
    ui = json.loads(path.read_text())
    api = json.loads((path.parent / "api" / f"{TWINS[path.stem]}.json").read_text())
    converted = ui_to_api(ui, specs)
    for node_id, node in api.items():
        spec = specs[node["class_type"]]
        expected = dict(node["inputs"])
        for name in bw.input_names(spec):               # unset optional widgets export their default
            entry = bw.input_spec(spec, name)
            if name not in expected and bw.is_widget(entry):
                expected[name] = bw.options(entry).get("default")
        assert converted[node_id] == {"class_type": node["class_type"], "inputs": expected}, node_id
    assert set(converted) == set(api)
    ids = {link[0] for link in ui["links"]}
    for node in ui["nodes"]:
        for out in node["outputs"]:
            assert set(out["links"]) <= ids
    assert ui["last_link_id"] == len(ui["links"]) and ui["last_node_id"] == max(n["id"] for n in ui["nodes"])


def overlap(a, b):
    ax, ay, aw, ah = a
    bx, by, bw_, bh = b
    return ax < bx + bw_ and bx < ax + aw and ay < by + bh and by < ay + ah


@pytest.mark.parametrize("path", UI, ids=lambda p: p.stem)
def test_ui_workflow_opens_readable(path):
    """Zoom the frontend draws in full, a note first, nodes that do not overlap, each inside one group, and
    distinct titles (two nodes both called "CLIP Text Encode (Prompt)" cannot be told apart)."""
    ui = json.loads(path.read_text())
    assert ui["extra"]["ds"]["scale"] >= 0.6
    notes = [n for n in ui["nodes"] if n["type"] in FRONTEND_ONLY]
    assert len(notes) == 1 and len(notes[0]["widgets_values"][0]) > 100
    boxes = {n["id"]: [*n["pos"], *n["size"]] for n in ui["nodes"]}
    ids = sorted(boxes)
    assert not [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:] if overlap(boxes[a], boxes[b])]
    for n in ui["nodes"]:
        if n["type"] in FRONTEND_ONLY:
            continue
        x, y, w, h = boxes[n["id"]]
        inside = [g["title"] for g in ui["groups"] if g["bounding"][0] <= x and x + w <= sum(g["bounding"][::2])
                  and g["bounding"][1] <= y and y + h <= sum(g["bounding"][1::2])]
        assert len(inside) == 1, (n["title"], inside)
    titles = [n["title"] for n in ui["nodes"]]
    repeated = {t for t in titles if titles.count(t) > 1}
    assert not repeated & {"CLIP Text Encode (Prompt)", "UniAVGen Caption Encode"}, repeated


def test_every_output_needs_every_loader():
    """A loader that fails validation (a missing vocoder, say) then stops the whole run: no output branch
    can run the sampler without it."""
    loaders = {"UniAVGenModelLoader", "UniAVGenVocoderLoader", "VAELoader", "CLIPLoader", "UniAVGenVideoCodecLoader"}
    for name, (_, build) in WORKFLOWS.items():
        graph = build()

        def ancestors(n):
            seen, todo = set(), [n]
            while todo:
                k = todo.pop()
                if k not in seen:
                    seen.add(k)
                    todo += [v[0] for v in graph[k][1].values() if isinstance(v, tuple)]
            return seen
        wanted = {k for k, (cls, _) in graph.items() if cls in loaders}
        for k, (cls, _) in graph.items():
            if cls in OUTPUT_NODES:
                assert wanted <= ancestors(k), (name, k, cls, wanted - ancestors(k))


def test_mini_demo_needs_no_download():
    """Every file it names ships with the pack (the combo checks above find them in the lists)."""
    graph = mini_demo()
    assert not {cls for cls, _ in graph.values()} & {"VAELoader", "CLIPLoader", "LoadImage", "LoadAudio", "LoadVideo"}
    assert not {v for _, inputs in graph.values() for v in inputs.values() if isinstance(v, str)} & DOWNLOADS


def test_mini_demo_samples_like_make_demo():
    """The workflow's sampler settings are the ones the small model was tuned and measured with."""
    from uniavgen_core.mini import MINI_SAMPLING
    (settings,) = [inputs for cls, inputs in mini_demo().values() if cls == "UniAVGenSampler"]
    assert (settings["steps"], settings["shift"], settings["video_cfg"], settings["audio_cfg"],
            settings["macfg_fraction"], settings["slg_layer"]) == (
        MINI_SAMPLING.steps, MINI_SAMPLING.shift, MINI_SAMPLING.video_cfg, MINI_SAMPLING.audio_cfg,
        MINI_SAMPLING.macfg_fraction, MINI_SAMPLING.slg_layer)


@pytest.mark.parametrize("path", UI, ids=lambda p: p.stem)
def test_each_template_has_its_thumbnail(path):
    """The template browser asks for <name>.jpg next to each workflow (tools/screenshot_workflows.py makes them)."""
    thumb = path.with_suffix(".jpg")
    data = thumb.read_bytes()
    assert data[:3] == b"\xff\xd8\xff" and len(data) > 10_000, thumb.name
    height, width = struct.unpack(">HH", data[data.index(b"\xff\xc0") + 5:][:4])      # baseline JPEG frame header
    assert (width, height) == (640, 379), (thumb.name, width, height)
