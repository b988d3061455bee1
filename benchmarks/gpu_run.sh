#!/usr/bin/env bash
# A GPU check in one call on the GPU machine, from the repository root, with build/gpu-bundle carried
# (make gpu-bundle): the carried wheels go into a private folder on PYTHONPATH, the carried vocab.txt is
# named to the tests, and benchmarks/gpu_check.py writes its report under $OUT. `make gpu-rehearsal`
# runs this same script on the CPU in a stand-in of the machine. Extra arguments go to gpu_check.py.
set -uo pipefail
BUNDLE=${BUNDLE:-build/gpu-bundle}
PYTHON=${PYTHON:-python3}
SITE=${SITE:-/tmp/uniavgen-site}
if [ ! -f "$BUNDLE/MANIFEST.txt" ]; then
  echo "gpu_run: no bundle at $BUNDLE: run make gpu-bundle before the call and carry that folder" >&2
  exit 2
fi
wheels=("$BUNDLE"/wheels/*.whl)
if [ -e "${wheels[0]}" ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "${wheels[@]}" || { echo "gpu_run: the carried wheels did not install into $SITE" >&2; exit 2; }
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ -f "$BUNDLE/vocab.txt" ]; then export UNIAVGEN_VOCAB="$PWD/$BUNDLE/vocab.txt"; fi
export PYTHONUNBUFFERED=1
exec "$PYTHON" benchmarks/gpu_check.py --out "${OUT:-build/gpu-check}" "$@"
