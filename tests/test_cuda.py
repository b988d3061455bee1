"""The CUDA checks of `make gpu-check`: golden parity in float32 on the GPU, every speed/memory
mode within the bf16 bounds, block swap with its side stream equal to the resident model,
compile, and each installed attention backend. Skipped, with this reason, without a GPU."""
import sys

import pytest
import torch

from helpers import REPO, rel_l2
from helpers import random_request
from uniavgen_core.model.attention import BACKENDS, unavailable_reason
from uniavgen_core.checkpoint.loading import load_model
from uniavgen_core.sampling import SamplingParams, Task, sample

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU: run `make gpu-check` on one")]


def test_every_mode_on_cuda_within_the_golden_bounds(golden_dir, fp8_checkpoint):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import mode_parity
    rows = mode_parity.run_modes(golden_dir, fp8_checkpoint, "cuda")
    print(rows)
    assert max(rows["float32"].values()) < 1e-3                   # the golden tolerance of whole runs
    for mode, errs in rows.items():
        assert max(errs.values()) < 0.05, mode                    # bf16 rounding, accumulated over the run
    assert rows["bf16 swap15"] == rows["bf16"]                    # the side-stream copies change nothing
    torch._dynamo.reset()


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "sdpa"])
def test_attention_backend_matches_sdpa(golden_dir, backend):
    reason = unavailable_reason(backend)
    if reason:
        pytest.skip(reason)
    model = load_model(golden_dir, dtype=torch.bfloat16, device="cuda")
    requests = [random_request(Task.AVG, 3)]
    ref = sample(model, requests, SamplingParams(steps=2), device="cuda")
    model.attention_backend = backend
    ours = sample(model, requests, SamplingParams(steps=2), device="cuda")
    assert rel_l2(ours.video.float(), ref.video.float()) < 0.05
    assert rel_l2(ours.audio.float(), ref.audio.float()) < 0.05
