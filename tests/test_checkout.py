"""The checkout itself: the suite runs in a clone under the folder name the README's install step
gives (ComfyUI-UniAVGen, not a Python name), where pytest imports the pack's __init__.py as a
lone file."""
import os
import shutil
import subprocess
import sys

from helpers import REPO, golden_root


def test_the_suite_runs_in_a_clone_named_as_the_readme_says(tmp_path):
    clone = tmp_path / "ComfyUI-UniAVGen"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "__init__.py",
                            "nodes", "uniavgen_core", "tests/conftest.py", "tests/helpers.py", "tests/test_lora.py",
                            "tests/comfy_double", "pyproject.toml"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    for name in files:
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, clone / name)
    env = {**os.environ, "UNIAVGEN_GOLDEN": str(golden_root())}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_lora.py"],
                          cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_host_test_assets_only_go_into_a_host_it_made(tmp_path, golden_dir, speech_vocab):
    """Pointed at a ComfyUI that make host-test did not create, the asset writer refuses and
    writes nothing (it would otherwise plant random-weight test models in a user's install)."""
    import pytest
    sys.path.insert(0, str(REPO / "tests" / "host"))
    import make_assets
    with pytest.raises(SystemExit, match="was not created by make host-test"):
        make_assets.main(tmp_path, golden_dir, speech_vocab)
    assert list(tmp_path.iterdir()) == []
    assert all("test" in name.lower() for name in (make_assets.DIT, make_assets.VOCODER, make_assets.VAE,
                                                   make_assets.MERGED, make_assets.FP8, make_assets.LORA))


def test_the_frontend_extension_is_exported_and_imports_comfyuis_scripts():
    """ComfyUI serves WEB_DIRECTORY's .js files at /extensions/<pack>/<file>: from there the host's
    scripts are two folders up (the real host test checks it is served and runs)."""
    import re
    entry = (REPO / "__init__.py").read_text()
    web = REPO / re.search(r'WEB_DIRECTORY = "(.+)"', entry).group(1)
    scripts = sorted(web.glob("*.js"))
    assert [p.name for p in scripts] == ["uniavgen_messages.js", "uniavgen_resolution.js"]
    assert "WEB_DIRECTORY" in entry.split("__all__")[1]
    for script in scripts:       # app.js only: the frontend's public module (1.58 warns about the others)
        imports = re.findall(r'from "([^"]+)"', script.read_text())
        assert imports == ["../../scripts/app.js"], (script.name, imports)
