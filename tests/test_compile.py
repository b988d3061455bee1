"""torch.compile of the blocks: the graphs capture whole (no graph breaks) and change nothing.
Dynamo's 'eager' backend checks the capture without spending minutes in code generation on CI."""
import pytest
import torch
import torch._dynamo

from helpers import rel_l2
from helpers import random_request
from uniavgen_core.checkpoint.loading import load_model
from uniavgen_core.sampling import SamplingParams, Task, sample


@pytest.fixture
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_compiled_blocks_capture_whole_and_match(golden_dir, tiny_model, fresh_dynamo):
    compiled = load_model(golden_dir, dtype=torch.float32)
    compiled.compile_blocks(backend="eager")                # fullgraph=True: a graph break raises
    req = [random_request(Task.RAVG, 13, ref_len=10)]
    params = SamplingParams(steps=2)
    ours, ref = sample(compiled, req, params), sample(tiny_model, req, params)
    assert rel_l2(ours.video, ref.video) < 1e-6 and rel_l2(ours.audio, ref.audio) < 1e-6


def test_block_swap_streams_layers_and_changes_nothing(golden_dir, tiny_model):
    swapped = load_model(golden_dir, dtype=torch.float32)
    swapped.set_block_swap(12, "cpu")
    assert swapped.block_swap.layers == list(range(18, 30))
    req = [random_request(Task.V2A, 14), random_request(Task.A2V, 15, cond_len=30)]
    params = SamplingParams(steps=2)
    ours, ref = sample(swapped, req, params), sample(tiny_model, req, params)
    assert torch.equal(ours.video, ref.video) and torch.equal(ours.audio, ref.audio)
    assert all(t.data_ptr() == home.data_ptr() for t, home in swapped.block_swap.host[28])   # back home
    assert not swapped.block_swap.ready
    with pytest.raises(ValueError, match="choose 0..30"):
        swapped.set_block_swap(31, "cpu")


def test_moving_the_model_leaves_swapped_layers_on_their_cpu_copies(golden_dir):
    """A memory manager that moves the whole model (here: a dtype change standing in for a device
    move) moves only the resident part; switching the swap off makes every layer movable again."""
    model = load_model(golden_dir, dtype=torch.float32)
    model.set_block_swap(2, "cpu")
    swap = model.block_swap
    whole = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert swap.resident_bytes(model) == whole - swap.host_bytes and swap.host_bytes > 0
    model.to(torch.float64)
    assert model.blocks[27].self_attn.q.weight.dtype == torch.float64
    assert model.blocks[28].self_attn.q.weight.dtype == torch.float32            # swapped: stays
    assert model.v2a_blocks[14].q.weight.dtype == torch.float32                  # layer 28's interaction
    assert all(t.data_ptr() == home.data_ptr() for t, home in swap.host[29])
    model.set_block_swap(0, "cpu")
    model.to(torch.float64)
    assert model.blocks[28].self_attn.q.weight.dtype == torch.float64
