"""`make gpu-bundle`: everything one GPU-check call needs beyond the working tree, in build/gpu-bundle.

    python benchmarks/gpu_bundle.py [--out build/gpu-bundle] [--vocab PATH]

The GPU machine has its own Python 3.12 and torch, no network, and only the packages listed in
benchmarks/gpu_machine.txt. This reads, from the source, every third-party package the check can import
(benchmarks/gpu_check.py, the CUDA tests and the benchmark, following the pack's own modules at any
depth), and downloads a wheel for each one the machine lacks, at the version benchmarks/gpu_wheels.txt
pins, for CPython 3.12 on manylinux x86-64, together with whatever those wheels require in turn. The
release's vocab.txt goes along when it is found (UNIAVGEN_VOCAB, or the shared folder beside the
repository); the golden vectors travel in the tree (tests/data/golden). The working tree plus the
bundle must fit the 64 MiB a call carries: the sizes are checked and printed.
The call itself is in docs/DEVELOPMENT.md (benchmarks/gpu_run.sh)."""
from __future__ import annotations

import argparse
import importlib.metadata
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tools"), str(REPO / "tests"), str(REPO / "benchmarks"), str(REPO)]
from gpu_check import ENTRIES, SEARCH  # noqa: E402
from import_graph import third_party_reach  # noqa: E402

MACHINE = REPO / "benchmarks" / "gpu_machine.txt"
PINS = REPO / "benchmarks" / "gpu_wheels.txt"
CARRY_LIMIT = 64 * 2 ** 20
MANYLINUX = {"manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"}
PLATFORM = ["--python-version", "3.12", "--implementation", "cp"] + [
    arg for tag in sorted(MANYLINUX) for arg in ("--platform", tag)]
MARKERS = {"python_version": "3.12", "python_full_version": "3.12.3", "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "sys_platform": "linux", "os_name": "posix",
           "platform_system": "Linux", "platform_machine": "x86_64", "extra": ""}


class BundleError(Exception):
    """A bundle that cannot be made as asked; the message says what to change."""


def mib(n: int) -> str:
    return f"{n / 2 ** 20:.1f} MiB"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_list(path: Path) -> dict[str, str | None]:
    """A requirements-style list (NAME or NAME==VERSION a line, # comments) -> {canonical name: version}."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[canonical(name)] = version.strip() or None
    return out


def reached_distributions() -> dict[str, set[str]]:
    """Distribution -> the repository files whose imports reach it, for every third-party import a GPU
    check can make. Import names map to distributions through this environment's metadata."""
    owners = importlib.metadata.packages_distributions()
    out: dict[str, set[str]] = {}
    for top, files in third_party_reach(ENTRIES, SEARCH).items():
        for dist in owners.get(top, [top]):
            out.setdefault(canonical(dist), set()).update(files)
    return out


def missing_on_machine() -> dict[str, set[str]]:
    machine = read_list(MACHINE)
    return {d: files for d, files in reached_distributions().items() if d not in machine}


def requirements(wheel: Path) -> list[str]:
    """The distributions a wheel requires on CPython 3.12 / Linux x86-64 (extras left out)."""
    from packaging.requirements import Requirement
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    out = []
    for line in meta.splitlines():
        if line.startswith("Requires-Dist:"):
            req = Requirement(line.split(":", 1)[1].strip())
            if req.marker is None or req.marker.evaluate(MARKERS):
                out.append(canonical(req.name))
    return out


def pip(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args, "--disable-pip-version-check"], cwd=cwd,
                          capture_output=True, text=True)


def fetch_wheel(name: str, version: str, dest: Path) -> Path:
    """The wheel of name==version for the GPU machine: a binary one from the index, else built here from
    the source release, which is accepted only when the result is pure Python (py3-none-any)."""
    spec = f"{name}=={version}"
    before = set(dest.glob("*.whl"))
    got = pip("download", "--no-deps", "--only-binary=:all:", *PLATFORM, "-d", str(dest), spec)
    if got.returncode != 0:
        source = dest.parent / "sources"
        got = pip("download", "--no-deps", "--no-binary=:all:", "-d", str(source), spec)
        if got.returncode != 0:
            raise BundleError(f"no wheel or source release of {spec} could be downloaded:\n{got.stderr[-800:]}")
        built = pip("wheel", "--no-deps", "-w", str(dest), *map(str, source.glob(f"{name}-{version}*")))
        if built.returncode != 0:
            raise BundleError(f"{spec} has no wheel for CPython 3.12 and its source did not build:\n"
                              f"{built.stderr[-800:]}")
    new = sorted(set(dest.glob("*.whl")) - before)
    if len(new) != 1:
        raise BundleError(f"expected one wheel for {spec}, got {[w.name for w in new]}")
    _, abi, platforms = new[0].name[:-len(".whl")].split("-")[-3:]
    if abi not in ("none", "abi3", "cp312") or not set(platforms.split(".")) & (MANYLINUX | {"any"}):
        raise BundleError(f"{new[0].name} does not run on the GPU machine (CPython 3.12, manylinux x86-64)")
    return new[0]


def tree_bytes() -> int:
    """What a call carries of the working tree: tracked files and untracked ones git does not ignore."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.split(b"\0")
    return sum((REPO / n.decode()).stat().st_size for n in names if n and (REPO / n.decode()).is_file())


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def build(out: Path, vocab: Path | None) -> dict:
    machine, pins = read_list(MACHINE), read_list(PINS)
    missing = missing_on_machine()
    unpinned = {d: sorted(files) for d, files in missing.items() if d not in pins}
    if unpinned:
        raise BundleError("these packages are imported by a GPU check but the GPU machine lacks them and "
                          f"benchmarks/gpu_wheels.txt pins no version: {unpinned}; add NAME==VERSION lines there")
    if out.exists():
        shutil.rmtree(out)
    wheels = out / "wheels"
    wheels.mkdir(parents=True)
    todo, done = sorted(missing), {}
    while todo:
        name = todo.pop()
        if name in done or name in machine:
            continue
        if name not in pins:
            raise BundleError(f"a carried wheel requires {name}, which the GPU machine lacks: pin it in "
                              f"benchmarks/gpu_wheels.txt")
        done[name] = fetch_wheel(name, pins[name], wheels)
        todo.extend(requirements(done[name]))
    shutil.rmtree(out / "sources", ignore_errors=True)
    if vocab is not None:
        shutil.copy(vocab, out / "vocab.txt")
    sizes = {"tree": tree_bytes(), "bundle": folder_bytes(out)}
    if sizes["tree"] + sizes["bundle"] > CARRY_LIMIT:
        raise BundleError(f"the working tree ({mib(sizes['tree'])}) and the bundle ({mib(sizes['bundle'])}) "
                          f"exceed the {mib(CARRY_LIMIT)} a call carries")
    (out / "MANIFEST.txt").write_text("".join(f"{w.name} {w.stat().st_size}\n" for w in sorted(done.values()))
                                      + (f"vocab.txt {(out / 'vocab.txt').stat().st_size}\n" if vocab else ""))
    return {"wheels": sorted(w.name for w in done.values()), "vocab": vocab is not None, **sizes}


def main() -> int:
    from helpers import release_vocab
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "gpu-bundle")
    parser.add_argument("--vocab", type=Path, help="the release's vocab.txt (default: found as the tests find it)")
    args = parser.parse_args()
    vocab = args.vocab or release_vocab()
    if vocab is not None and not vocab.is_file():
        print(f"gpu-bundle: {vocab} is not a file", file=sys.stderr)
        return 2
    try:
        made = build(args.out, vocab)
    except BundleError as err:
        print(f"gpu-bundle: {err}", file=sys.stderr)
        return 2
    print(f"gpu-bundle: {args.out}: {', '.join(made['wheels']) or 'no wheels'}"
          f"{', vocab.txt' if made['vocab'] else ' (no vocab.txt: the tests of its exact ids will skip)'}; "
          f"bundle {mib(made['bundle'])} + working tree {mib(made['tree'])} of {mib(CARRY_LIMIT)}")
    print(f"device call: carry [\"{args.out.relative_to(REPO)}\"], command `bash benchmarks/gpu_run.sh`, "
          f"timeout_s 400 (docs/DEVELOPMENT.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
