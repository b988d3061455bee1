"""The GPU check's preparation, kept honest on the CPU: every package it can import is on the GPU machine
or carried as a pinned wheel, the import reader sees deferred imports, the carried wheels' requirements
are read for the machine's Python, the call stops clearly without a bundle, and the benchmark reports
the modes a deadline left out. (`make gpu-rehearsal` runs the whole call in a stand-in machine.)"""
import subprocess
import sys
import zipfile

from helpers import REPO

sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "tools")]
import gpu_bundle  # noqa: E402
import gpu_check  # noqa: E402
from import_graph import third_party_reach  # noqa: E402


def test_every_package_the_check_imports_is_on_the_machine_or_pinned_to_travel():
    reached = gpu_bundle.reached_distributions()
    assert {"torch", "safetensors", "pytest"} <= set(reached)             # the reader does see the check
    missing = gpu_bundle.missing_on_machine()
    pins = gpu_bundle.read_list(gpu_bundle.PINS)
    assert set(missing) <= set(pins), {d: sorted(f) for d, f in missing.items() if d not in pins}
    assert all(version for version in pins.values())                       # one exact version each


def test_the_reader_follows_repository_modules_to_their_deferred_imports(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("import toplevel_dep\n")
    (tmp_path / "pkg" / "inner.py").write_text("def f():\n    import deferred_dep.sub\n    from . import other\n")
    (tmp_path / "pkg" / "other.py").write_text("import json\nfrom third import thing\n")
    (tmp_path / "entry.py").write_text("from pkg.inner import f\n")
    reach = third_party_reach([tmp_path / "entry.py"], [tmp_path])
    assert set(reach) == {"toplevel_dep", "deferred_dep", "third"}          # json is the standard library


def test_a_wheels_requirements_are_read_for_python_3_12_on_linux(tmp_path):
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("demo-1.0.dist-info/METADATA", "Name: demo\nVersion: 1.0\n"
                   "Requires-Dist: Typing_Extensions>=4\nRequires-Dist: enum34; python_version < '3.4'\n"
                   "Requires-Dist: pywin32; sys_platform == 'win32'\nRequires-Dist: rich; extra == 'cli'\n"
                   "Requires-Dist: tomli; python_version < '3.13'\n")
    assert gpu_bundle.requirements(wheel) == ["typing-extensions", "tomli"]


def test_the_device_call_without_a_bundle_stops_with_what_to_do(tmp_path):
    proc = subprocess.run(["bash", "benchmarks/gpu_run.sh"], cwd=REPO, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "BUNDLE": str(tmp_path / "none")}, timeout=60)
    assert proc.returncode == 2 and "run make gpu-bundle" in proc.stderr


def test_the_cuda_tests_collect_here():
    collected, errors, out = gpu_check.collect({"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"})
    assert collected >= 2 and errors == 0, out[-2000:]


def test_the_benchmark_reports_modes_past_its_deadline_as_not_run():
    proc = subprocess.run([sys.executable, "benchmarks/bench.py", "--device", "cpu", "--shape", "tiny", "--modes",
                           "resident,fp32", "--deadline", "0"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("| not run: the 0 s deadline had passed |") == 2
