"""The shipped workflows against the node definitions (ours and ComfyUI's own, from a real
/object_info snapshot), and the UI files against their API twins."""
import json
import struct
import sys

import pytest

from helpers import REPO

sys.path.insert(0, str(REPO / "tools"))
import build_workflows as bw  # noqa: E402
import workflow_graphs as wg  # noqa: E402
from workflow_graphs import DOWNLOADS, WORKFLOWS, mini_demo  # noqa: E402

API = sorted((REPO / "workflows" / "api").glob("*.json"))
UI = sorted((REPO / "workflows").glob("*.json"))
OUTPUT_NODES = {"SaveVideo", "SaveAudio", "SaveImage", "PreviewAudio", "PreviewImage", "UniAVGenSaveLongVideo"}


@pytest.fixture(scope="module")
def specs():
    return bw.all_specs()


def test_committed_files_are_what_the_graphs_build():
    rendered = bw.render()
    assert len(rendered) == 18 and len(API) == len(UI) == 9
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


def drawn(node):
    """[x, y, w, h] of a node as the frontend draws it: the 30-unit title bar above pos; collapsed, the title bar
    alone, as wide as its title (14 px text, at most 8 units a character here) + 60."""
    x, y = node["pos"]
    w, h = node["size"]
    if node.get("flags", {}).get("collapsed"):
        return [x, y - 30, min(w, len(node["title"]) * 8 + 60), 30]
    return [x, y - 30, w, h + 30]


@pytest.mark.parametrize("path", UI, ids=lambda p: p.stem)
def test_ui_workflow_opens_readable(path):
    """Zoom the frontend draws in full, a note, nodes that do not overlap, each inside one group, and
    distinct titles (two nodes both called "CLIP Text Encode (Prompt)" cannot be told apart)."""
    ui = json.loads(path.read_text())
    assert ui["extra"]["ds"]["scale"] >= 8 / 14         # below: blank boxes (8 px minimum font, 14 px node text)
    notes = [n for n in ui["nodes"] if n["type"] in FRONTEND_ONLY]
    assert len(notes) == 1 and len(notes[0]["widgets_values"][0]) > 100
    boxes = {n["id"]: drawn(n) for n in ui["nodes"]}
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


@pytest.mark.parametrize("frontend", sorted(bw.FRONTENDS))
@pytest.mark.parametrize("path", UI, ids=lambda p: p.stem)
def test_every_node_is_in_the_first_screen(path, frontend):
    """At the saved zoom and offset, in a 1280 x 800 window, every node lies on the canvas clear of what the
    frontend draws over it (menus, tabs, side bar, buttons, and the minimap, open by default)."""
    ui = json.loads(path.read_text())
    fe, ds = bw.FRONTENDS[frontend], ui["extra"]["ds"]
    ox, oy = fe["origin"]
    for n in ui["nodes"]:
        x, y, w, h = drawn(n)
        box = (ox + (x + ds["offset"][0]) * ds["scale"], oy + (y + ds["offset"][1]) * ds["scale"],
               ox + (x + w + ds["offset"][0]) * ds["scale"], oy + (y + h + ds["offset"][1]) * ds["scale"])
        assert 0 <= box[0] and box[2] <= bw.WINDOW[0] and 0 <= box[1] and box[3] <= bw.WINDOW[1], (n["title"], box)
        for c in fe["covered"]:
            assert not (box[0] < c[2] and c[0] < box[2] and box[1] < c[3] and c[1] < box[3]), (n["title"], box, c)


@pytest.mark.parametrize("path", UI, ids=lambda p: p.stem)
def test_no_node_covers_a_group_title(path):
    ui = json.loads(path.read_text())
    for g in ui["groups"]:
        x, y, w, _ = g["bounding"]
        title_bar = [x, y, w, g["font_size"] * 1.4]            # the frontend's group title height
        for n in ui["nodes"]:
            assert not overlap(drawn(n), title_bar), (g["title"], n["title"])


def rough_note_height(text: str, width: int) -> float:
    """A crude estimate, apart from the builder's: 10 px Markdown, 5 px a character, 12 px a line, a paragraph
    break 10 px, the heading 24 px, 30 px of padding."""
    lines = sum(max(1, -(-len(line) * 5 // (width - 28))) for line in text.splitlines() if line.strip())
    return 30 + 12 * lines + 10 * text.count("\n\n") + 12


@pytest.mark.parametrize("path", UI, ids=lambda p: p.stem)
def test_note_is_sized_to_its_text(path):
    """Not cut off, not two-thirds empty: its height is the builder's estimate, which is near a rough count."""
    ui = json.loads(path.read_text())
    (note,) = [n for n in ui["nodes"] if n["type"] in FRONTEND_ONLY]
    text, (width, height) = note["widgets_values"][0], note["size"]
    assert height == bw.note_height(text, width)
    assert 0.8 <= height / rough_note_height(text, width) <= 1.25, (height, rough_note_height(text, width))


def test_note_height_follows_the_text():
    short, long = "## A\n\nOne line.", "## A\n\n" + "Many words in a long paragraph. " * 40
    assert bw.note_height(long, bw.NOTE_W) > 3 * bw.note_height(short, bw.NOTE_W)
    assert bw.note_height(long, bw.NOTE_W) > bw.note_height(long, 2 * bw.NOTE_W)


def test_message_text_is_at_least_12_px_on_screen():
    """The message boxes' font (web/uniavgen_messages.js) at every workflow's zoom."""
    js = (REPO / "web" / "uniavgen_messages.js").read_text()
    (font,) = {int(v) for v in __import__("re").findall(r"const MESSAGE_FONT = (\d+);", js)}
    assert font == bw.MESSAGE_FONT
    assert "ComfyWidgets" not in js and "scripts/widgets.js" not in js and "inputEl" not in js   # deprecated
    for path in UI:
        assert font * json.loads(path.read_text())["extra"]["ds"]["scale"] >= 12, path.stem


@pytest.mark.parametrize("path", UI, ids=lambda p: p.stem)
def test_room_for_previews_and_messages(path, specs):
    """Save Video is tall enough for its square video preview, the Sampler for its one-line message."""
    ui = json.loads(path.read_text())
    for n in ui["nodes"]:
        if n["type"] == "SaveVideo":
            assert n["size"][1] >= 106 + n["size"][0] - bw.VIDEO_PREVIEW_MARGIN, n["title"]
        if n["type"] == "UniAVGenSampler":
            assert n["size"][1] >= 550 + 1.3 * bw.MESSAGE_FONT, n["title"]      # 10 slot rows, 14 widget rows


def test_short_side_is_hidden_unless_used():
    """The web extension hides short_side unless resolution is 'short side', on both nodes that have it; the
    shipped workflows are sized without it when it is hidden."""
    from nodes.common import RESOLUTIONS
    js = (REPO / "web" / "uniavgen_resolution.js").read_text()
    assert f'"{RESOLUTIONS[1]}"' in js and "UniAVGenReferenceImage" in js and "UniAVGenVideoEncode" in js
    assert ".hidden = " in js or "side.hidden = hide" in js
    specs = bw.all_specs()
    shown = bw.visible_widgets("UniAVGenReferenceImage", specs["UniAVGenReferenceImage"],
                               {"resolution": RESOLUTIONS[0]})
    assert "short_side" not in shown and "resolution" in shown
    assert "short_side" in bw.visible_widgets("UniAVGenReferenceImage", specs["UniAVGenReferenceImage"],
                                              {"resolution": RESOLUTIONS[1]})


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
    """Every file it names ships with the pack (the combo checks above find them in the lists); its picture is
    one of the example inputs, which the pack copies into ComfyUI's input folder."""
    graph = mini_demo()
    assert not {cls for cls, _ in graph.values()} & {"VAELoader", "CLIPLoader", "LoadAudio", "LoadVideo"}
    assert not {v for _, inputs in graph.values() for v in inputs.values() if isinstance(v, str)} & DOWNLOADS
    pictures = [inputs["image"] for cls, inputs in graph.values() if cls == "LoadImage"]
    assert pictures and all((REPO / "example_inputs" / p).is_file() for p in pictures)


def test_mini_demo_takes_your_picture():
    """A Load Image node (the shipped face by default) is the reference, the caption describes that face in the
    small model's caption words, and the note says which nodes to change."""
    graph = mini_demo()
    (load,) = [k for k, (cls, _) in graph.items() if cls == "LoadImage"]
    assert graph[load][1]["image"] == "uniavgen_face.png"
    (ref,) = [k for k, (cls, _) in graph.items() if cls == "UniAVGenReferenceImage"]
    assert graph[ref][1]["image"] == (load, 0)
    (sampler,) = [inputs for cls, inputs in graph.values() if cls == "UniAVGenSampler"]
    assert sampler["reference"] == (ref, 0)
    caption = graph[sampler["positive"][0]]
    assert caption[0] == "UniAVGenCaptionEncode" and caption[1]["text"] == wg.FACE
    title = wg.TITLES["UniAVGenCaptionEncode"][sampler["positive"][0]]
    note = wg.NOTES["uniavgen_mini_demo"]
    assert "**Load Image**" in note and f"**{title}**" in note and "**UniAVGen Speech Text**" in note


def test_captions_describe_the_shipped_inputs():
    """The captions and transcripts name what example_inputs/ holds, as the generator that made it says."""
    import numpy as np
    from uniavgen_core.synthetic import faces, samples
    from uniavgen_core.synthetic.clips import make_clip
    assert wg.FACE == faces.caption(faces.random_face(np.random.default_rng(samples.FACE_SEED), 512))
    assert wg.CLIP_FACE == faces.caption(faces.random_face(np.random.default_rng(samples.SPEECH_SEED), 256))
    assert wg.SPEECH_TEXT == samples.SPEECH_TEXT
    assert wg.VOICE_TEXT == make_clip(samples.FACE_SEED, frames=81, size=512).ref_text
    for name, (_, build) in WORKFLOWS.items():
        graph = build()
        files = {v for _, inputs in graph.values() for v in inputs.values() if isinstance(v, str)}
        captions = " ".join(inputs["text"] for cls, inputs in graph.values()
                            if cls in ("CLIPTextEncode", "UniAVGenCaptionEncode"))
        assert ("uniavgen_face.png" in files) == (wg.FACE in captions), name
        assert ("uniavgen_clip.mp4" in files) == (wg.CLIP_FACE in captions), name
        for word in ("woman", "dark hair", "softly lit"):
            assert word not in captions.lower() and word not in wg.NOTES[name].lower(), (name, word)
        voices = [inputs.get("reference_text") for cls, inputs in graph.values() if cls == "UniAVGenSpeechText"]
        if "uniavgen_voice.wav" in files:
            assert wg.VOICE_TEXT in voices, name


def test_mini_demo_samples_like_make_demo():
    """The workflow's sampler settings are the ones the small model was tuned and measured with."""
    from uniavgen_core.mini.pipeline import MINI_SAMPLING
    (settings,) = [inputs for cls, inputs in mini_demo().values() if cls == "UniAVGenSampler"]
    assert (settings["steps"], settings["shift"], settings["video_cfg"], settings["audio_cfg"],
            settings["macfg_fraction"], settings["slg_layer"]) == (
        MINI_SAMPLING.steps, MINI_SAMPLING.shift, MINI_SAMPLING.video_cfg, MINI_SAMPLING.audio_cfg,
        MINI_SAMPLING.macfg_fraction, MINI_SAMPLING.slg_layer)


@pytest.mark.parametrize("path", UI, ids=lambda p: p.stem)
def test_each_template_has_its_thumbnail(path):
    """The template browser asks for <name>.jpg next to each workflow (tools/make_thumbnails.py makes them): a
    square card (the browser crops thumbnails to its square cards), big enough to read at card size."""
    thumb = path.with_suffix(".jpg")
    data = thumb.read_bytes()
    assert data[:3] == b"\xff\xd8\xff" and len(data) > 10_000, thumb.name
    height, width = struct.unpack(">HH", data[data.index(b"\xff\xc0") + 5:][:4])      # baseline JPEG frame header
    assert (width, height) == (512, 512), (thumb.name, width, height)


def test_thumbnails_differ():
    cards = [p.with_suffix(".jpg").read_bytes() for p in UI]
    assert len(set(cards)) == len(cards)


def saved_from(graph: dict):
    """The one Save Long Video's latent and the mel its audio decodes: (long node id, latent, mel); no VAEDecode."""
    assert not any(cls == "VAEDecode" for cls, _ in graph.values())
    (save,) = [inputs for cls, inputs in graph.values() if cls == "UniAVGenSaveLongVideo"]
    mel = graph[save["audio"][0]][1]["mel"]
    return save["latent"][0], save["latent"], mel


def test_the_long_templates_say_a_long_transcript_and_chain_an_extend():
    """6: one Long Sampler on a transcript longer than one segment holds, saved once a few seconds at a time (with
    the speech of the same mel); 7: the Sampler's clip carried on by an Extend with its own words, the Extend's
    stitched result saved the same way."""
    from uniavgen_core.frontend.long import pack_transcript
    graph = wg.long_talk()
    (long_id,) = [k for k, (cls, _) in graph.items() if cls == "UniAVGenLongSampler"]
    words = graph[graph[long_id][1]["speech"][0]][1]["text"]
    assert len(pack_transcript(words, 81 / 16, 68 / 16, 15.0)) >= 3          # the release's segments
    assert saved_from(graph) == (long_id, (long_id, 0), (long_id, 1))
    graph = wg.long_extend()
    (sampler,) = [k for k, (cls, _) in graph.items() if cls == "UniAVGenSampler"]
    (extend,) = [k for k, (cls, inputs) in graph.items() if cls == "UniAVGenExtend"]
    assert graph[extend][1]["latent"] == (sampler, 0) and graph[extend][1]["mel"] == (sampler, 1)
    assert graph[extend][1]["speech"] != graph[sampler][1]["speech"]
    assert saved_from(graph) == (extend, (extend, 0), (extend, 1))
    assert not {cls for cls, _ in graph.values()} & {"UniAVGenLastFrame", "UniAVGenJoinClips"}
