"""The package layout as its imports draw it: the model knows nothing of sampling, audio or files on
disk, the core never imports ComfyUI or the nodes, and the development tools stay out of the nodes'
import path. The graph comes from the source (every import statement, at any depth)."""
import subprocess
import sys

import pytest

from helpers import REPO

sys.path.insert(0, str(REPO / "tools"))
from import_graph import graph  # noqa: E402

CORE = REPO / "uniavgen_core"
TOOLS = {"golden", "demo", "train", "convert"}      # command-line tools: python -m uniavgen_core.<tool>


def area(module: str) -> str:
    """uniavgen_core.model.dit -> model; uniavgen_core.units -> units."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_graph_is_read_from_every_module():
    g = graph(CORE)
    assert {"uniavgen_core.model.dit", "uniavgen_core.sampling.loop", "uniavgen_core.audio.mel",
            "uniavgen_core.checkpoint.loading", "uniavgen_core.units"} <= set(g)
    assert "uniavgen_core.model.conditioning" in g["uniavgen_core.sampling.guidance"]


@pytest.mark.parametrize("package, allowed", [
    ("model", {"model", "units"}),
    ("sampling", {"sampling", "model", "units"}),
    ("audio", {"audio", "units", "checkpoint", "model"}),     # the vocoder reads its weights like the DiT
    ("checkpoint", {"checkpoint", "model", "units"}),
])
def test_no_arrow_points_up_or_sideways(package, allowed):
    bad = []
    for module, deps in graph(CORE / package).items():
        for dep in deps:
            if dep.startswith("uniavgen_core.") and area(dep) not in allowed:
                bad.append(f"{module} -> {dep}")
    assert not bad, bad


def test_the_core_never_imports_comfyui_or_the_nodes():
    bad = [f"{m} -> {d}" for m, deps in graph(CORE).items() for d in deps
           if d.split(".")[0] in ("comfy", "comfy_api", "folder_paths", "nodes", "server", "comfy_extras")]
    assert not bad, bad


def test_nothing_imports_the_command_line_tools():
    bad = [f"{m} -> {d}" for folder in (CORE, REPO / "nodes") for m, deps in graph(folder).items() for d in deps
           if any(d == f"uniavgen_core.{t}" or d.startswith(f"uniavgen_core.{t}.") for t in TOOLS)
           and m not in {f"uniavgen_core.{t}" for t in TOOLS}]
    assert not bad, bad


def loaded_after(statement: str) -> set[str]:
    """The package's modules in memory after `statement` runs in a fresh interpreter."""
    script = (f"import sys; sys.path[:0] = ['tests/comfy_double', '.']; {statement}; "
              "print(' '.join(sorted(m for m in sys.modules if m.startswith('uniavgen_core'))))")
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


def test_loading_the_nodes_leaves_the_development_tools_unloaded():
    loaded = loaded_after("import nodes")
    assert "uniavgen_core.sampling" in loaded and "uniavgen_core.model.dit" in loaded
    unwanted = {m for m in loaded if area(m) in TOOLS | {"training"}}
    assert not unwanted, unwanted


def test_importing_the_model_loads_only_the_model_and_units():
    loaded = loaded_after("import uniavgen_core.model")
    assert "uniavgen_core.model.dit" in loaded
    assert {area(m) for m in loaded} <= {"", "model", "units"}, sorted(loaded)


def test_the_public_api_is_importable_from_the_package():
    import uniavgen_core
    for name in uniavgen_core.__all__:
        assert getattr(uniavgen_core, name) is not None, name
    assert uniavgen_core.sample.__module__ == "uniavgen_core.sampling.loop"
    assert uniavgen_core.load_model.__module__ == "uniavgen_core.checkpoint.loading"


def test_the_flow_conventions_have_one_owner():
    """The timestep shift and sigma = t / 1000 are written once (sampling/flow.py); the schedule, the
    training objective, the loop and the solvers call it."""
    import re
    shift = re.compile(r"\(\s*[\w.]+\s*-\s*1\s*\)\s*\*")            # (shift - 1) * s
    by_thousand = re.compile(r"/\s*1000\b|/\s*NUM_TIMESTEPS\b")
    found = {}
    for path in sorted((REPO / "uniavgen_core").rglob("*.py")):
        code = "\n".join(line.split("#")[0] for line in path.read_text().splitlines())
        code = re.sub(r'"""[\s\S]*?"""', "", code)
        for name, pattern in (("shift", shift), ("sigma", by_thousand)):
            if pattern.search(code):
                found.setdefault(name, []).append(str(path.relative_to(REPO)))
    assert found["shift"] == ["uniavgen_core/sampling/flow.py"]
    assert found["sigma"] == ["uniavgen_core/sampling/flow.py"]
