"""The package layout as its imports draw it: the model knows nothing of sampling, audio or files on
disk, the core never imports ComfyUI or the nodes, the command-line tools live in one package nothing
else imports, and the development tools stay out of the nodes' import path. The graph comes from the
source (every import statement, at any depth)."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

sys.path.insert(0, str(REPO / "tools"))
from import_graph import graph, imports  # noqa: E402

CORE = REPO / "uniavgen_core"
CLI = CORE / "cli"                      # the command-line tools: python -m uniavgen_core.cli.<tool>
DEVELOPMENT = {"cli", "golden", "demo", "training"}     # development code: loading the nodes loads none of it


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


def is_cli(module: str) -> bool:
    return module == "uniavgen_core.cli" or module.startswith("uniavgen_core.cli.")


def package_files() -> list[Path]:
    """Every source file of what ComfyUI loads: the core, the nodes and the pack's entry point."""
    return sorted(CORE.rglob("*.py")) + sorted((REPO / "nodes").rglob("*.py")) + [REPO / "__init__.py"]


def test_nothing_imports_the_command_line_tools():
    modules = {**graph(CORE), **graph(REPO / "nodes"), "__init__": imports(REPO / "__init__.py")}
    bad = [f"{m} -> {d}" for m, deps in modules.items() for d in deps if is_cli(d.lstrip(".")) and not is_cli(m)]
    assert not bad, bad


def command_line_code(path: Path) -> list[str]:
    """Where `path` runs as a program (an `if __name__ == "__main__":` block) or parses arguments (it builds
    an argparse.ArgumentParser)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            sides = [node.test.left, *node.test.comparators]
            names, strings = {getattr(s, "id", None) for s in sides}, {getattr(s, "value", None) for s in sides}
            if "__name__" in names and "__main__" in strings:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} runs as __main__")
        elif isinstance(node, ast.Call):
            if getattr(node.func, "attr", getattr(node.func, "id", None)) == "ArgumentParser":
                found.append(f"{path.relative_to(REPO)}:{node.lineno} builds an ArgumentParser")
    return found


def test_only_the_command_line_tools_parse_arguments_or_run_as_programs():
    """A tool's arguments, printing and exit status live in uniavgen_core/cli/; the library keeps the work."""
    assert len(command_line_code(CLI / "train.py")) == 2            # the check sees both in a tool
    bad = [hit for path in package_files() if not path.is_relative_to(CLI) for hit in command_line_code(path)]
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
    unwanted = {m for m in loaded if area(m) in DEVELOPMENT}
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
