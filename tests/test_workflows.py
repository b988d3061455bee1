"""The shipped workflows against the node definitions (ours and ComfyUI's own, from a real
/object_info snapshot), and the UI files against their API twins."""
import json
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
import build_workflows as bw  # noqa: E402
from workflow_graphs import DOWNLOADS, mini_demo  # noqa: E402

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


def ui_to_api(ui, specs):
    """What the frontend's 'Export (API)' makes of a UI workflow."""
    links = {link[0]: link for link in ui["links"]}
    by_id = {node["id"]: node["type"] for node in ui["nodes"]}
    graph = {}
    for node in ui["nodes"]:
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


@pytest.mark.parametrize("path", UI, ids=lambda p: p.stem)
def test_ui_workflow_is_its_api_twin(path, specs):
    ui = json.loads(path.read_text())
    api = json.loads((path.parent / "api" / path.name).read_text())
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
    assert ui["last_link_id"] == len(ui["links"]) and ui["last_node_id"] == max(int(k) for k in api)


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
        MINI_SAMPLING.macfg_prop, MINI_SAMPLING.slg_layer)
