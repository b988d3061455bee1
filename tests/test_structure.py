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
    """The command-line tools: uniavgen_core.cli and a package's __main__ (python -m package)."""
    return module == "uniavgen_core.cli" or module.startswith("uniavgen_core.cli.") or module.endswith(".__main__")


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


def python_files(*roots):
    for root in roots:
        yield from sorted(root.rglob("*.py")) if root.is_dir() else [root]


def parsed(path):
    import ast
    return ast.parse(path.read_text(), filename=str(path))


def test_only_the_task_table_branches_on_a_task():
    """No module compares with a task or keys a mapping on one, except the table itself: what a task
    needs and sets is read from sampling/tasks.py."""
    import ast
    is_task = lambda node: (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                            and node.value.id == "Task")
    found = []
    for path in python_files(CORE, REPO / "nodes"):
        if path == CORE / "sampling" / "tasks.py":
            continue
        for node in ast.walk(parsed(path)):
            operands = ([node.left, *node.comparators] if isinstance(node, ast.Compare)
                        else node.keys if isinstance(node, ast.Dict) else [])
            if any(is_task(x) for x in operands if x is not None):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert found == []


def test_the_core_never_sees_comfyui_types():
    """ComfyUI's objects and layouts (CONDITIONING lists, LATENT dicts, model patchers, latent formats)
    are converted in the nodes; the core takes tensors and its own dataclasses."""
    import ast
    comfy_names = {"CONDITIONING", "LATENT", "ModelPatcher", "process_in", "process_out", "latent_format",
                   "folder_paths", "model_management"}
    found = []
    for path in python_files(CORE):
        for node in ast.walk(parsed(path)):
            name = (node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name)
                    else node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None)
            if name in comfy_names or (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Subscript)
                                       and all(isinstance(s.slice, ast.Constant) and s.slice.value == 0
                                               for s in (node, node.value))):
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {name or '[0][0]'}")
    assert found == []


def test_the_nodes_are_thin():
    """Every function of the node adapters fits in 40 lines: the policy lives in the core."""
    import ast
    long = [f"{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in python_files(REPO / "nodes") for node in ast.walk(parsed(path))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 40]
    assert long == []


def test_the_vae_strides_and_frame_rate_are_written_once():
    """The Wan2.2 VAE's strides (4 frames, 16 pixels), its 48 channels and the 16 fps live in units.py;
    arithmetic elsewhere names them. (Stride-like literals multiply, divide or shift.)"""
    import ast
    found = []
    for path in python_files(CORE, REPO / "nodes"):
        if path == CORE / "units.py":
            continue
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Div, ast.FloorDiv)):
                literals = [x.value for x in (node.left, node.right) if isinstance(x, ast.Constant)]
                if 16 in literals or 48 in literals:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
            if isinstance(node, ast.Compare) and any(isinstance(x, ast.Constant) and x.value == 48
                                                     for x in node.comparators):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert found == []


def test_the_layer_stacks_are_named_once(tiny_model):
    """The model's stacks (blocks, audio_blocks, a2v_blocks, v2a_blocks) are listed in model/config.py;
    the fp8 rule, the checkpoint reader and the trainer build on that list, and the model has exactly them."""
    import re

    import torch
    from uniavgen_core.model.config import STACKS
    listing = re.compile(r"a2v_blocks\W+v2a_blocks|audio_blocks\W+a2v_blocks")
    found = [str(p.relative_to(REPO)) for p in python_files(CORE) if listing.search(p.read_text())]
    assert found == ["uniavgen_core/model/config.py"]
    stacks = [name for name, child in tiny_model.named_children() if isinstance(child, torch.nn.ModuleList)]
    assert sorted(stacks) == sorted(STACKS)
