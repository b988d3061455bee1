"""The checkout itself: the suite runs in a clone under the folder name the README's install step
gives (ComfyUI-UniAVGen, not a Python name), where pytest imports the pack's __init__.py as a
lone file."""
import os
import shutil
import subprocess
import sys

from conftest import REPO, golden_root


def test_the_suite_runs_in_a_clone_named_as_the_readme_says(tmp_path):
    clone = tmp_path / "ComfyUI-UniAVGen"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "__init__.py",
                            "nodes", "uniavgen_core", "tests/conftest.py", "tests/helpers.py", "tests/test_lora.py",
                            "pyproject.toml"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, clone / name)
    env = {**os.environ, "UNIAVGEN_GOLDEN": str(golden_root())}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_lora.py"],
                          cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
