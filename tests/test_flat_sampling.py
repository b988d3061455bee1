"""A sampler written elsewhere driving the guided velocity (uniavgen_core/sampling/flat.py, loop.prepare and
Prepared.finish, schedule.from_sigmas): the flat joint state, the denoiser's data prediction and its MA-CFG
field, noise levels made elsewhere checked with messages that say what to do, and a k-diffusion-style Euler
over the flat state against the pack's own Euler."""
import pytest
import torch

from helpers import random_request, rel_l2
from uniavgen_core.sampling import SCHEDULES, Denoiser, FlatLayout, SamplingParams, Task, prepare, sample
from uniavgen_core.sampling.schedule import build, check_sigmas, from_sigmas, macfg_switch

FP32 = SamplingParams(steps=6, schedule_dtype=torch.float32)


def test_the_flat_state_round_trips_a_row_per_request():
    gen = torch.Generator().manual_seed(0)
    video, audio = torch.randn(2, 48, 3, 4, 6, generator=gen), torch.randn(2, 56, 80, generator=gen)
    layout = FlatLayout(video.shape, audio.shape)
    flat = layout.pack(video, audio)
    assert flat.shape == (2, video[0].numel() + audio[0].numel()) and flat.dtype == torch.float32
    assert torch.equal(flat[1], torch.cat([video[1].flatten(), audio[1].flatten()]))
    back = layout.unpack(flat)
    assert torch.equal(back[0], video) and torch.equal(back[1], audio)


def test_the_denoiser_is_x_minus_sigma_v_in_the_field_of_its_noise_level(tiny_model):
    """MA-CFG is on above the switch (schedule.macfg_switch) for sigmas made elsewhere, keyed on 1000 sigma."""
    sigmas = build("shifted", 8, 5.0, 0.5).sigmas
    run = prepare(tiny_model, [random_request(Task.AVG, 3)], FP32, sigmas=sigmas)
    assert run.steps == 8 and run.schedule.macfg_above == pytest.approx(macfg_switch(0.5, 5.0), rel=1e-7)
    denoise = Denoiser(run)
    x = denoise.noise() * 0.8 + 0.1
    video, audio = denoise.layout.unpack(x)
    for level, on in ((0.95, True), (0.3, False)):
        sigma = torch.tensor(level)
        got = denoise(x, sigma.expand(1))
        v = run.velocity(video, audio, float(sigma * 1000), macfg=on)
        assert torch.allclose(got, x - sigma * denoise.layout.pack(v.video, v.audio), rtol=0, atol=1e-6)
        other = run.velocity(video, audio, float(sigma * 1000), macfg=not on)
        assert not torch.allclose(got, x - sigma * denoise.layout.pack(other.video, other.audio), atol=1e-4)
    with pytest.raises(ValueError, match="one noise level per call"):
        denoise(torch.cat([x, x]), torch.tensor([0.5, 0.4]))


@pytest.mark.parametrize("sigmas, message", [
    (torch.ones(2, 3), r"1-D list of noise levels, got shape \(2, 3\)"),
    (torch.tensor([1.0]), "hold 1 value.s.: a run needs at least two, from 1 .pure noise. to 0"),
    (torch.tensor([1.0, float("nan"), 0.0]), "NaN or infinite"),
    (torch.tensor([14.61, 7.0, 0.03, 0.0]), "start at 14.61, above 1.*sigma_max of 14.6.*set the maximum sigma to 1"),
    (torch.tensor([1.0, 1.2, 0.0]), "hold 1.2 at position 1, outside .0, 1."),
    (torch.tensor([1.0, -0.1, 0.0]), "hold -0.1 at position 1, outside .0, 1."),
    (torch.tensor([0.5, 0.2, 0.0]), "start at 0.5, not at 1: a run starts from pure noise"),
    (torch.tensor([1.0, 0.3, 0.5, 0.0]), "rise from 0.3 to 0.5 at position 2: .*flip it back"),
    (torch.tensor([1.0, 0.5, 0.03]), "end at 0.03, not at 0: the output would keep that much noise"),
])
def test_sigmas_made_elsewhere_are_refused_with_what_to_do(sigmas, message):
    with pytest.raises(ValueError, match=message):
        check_sigmas(sigmas)


def test_sigmas_near_one_at_the_start_are_taken_and_a_repeated_level_is_dropped():
    grid = from_sigmas(torch.tensor([1.00005, 0.5, 0.5, 0.0], dtype=torch.float64), 5.0, 0.5)
    assert grid.keys.dtype == torch.float32 and grid.keys.tolist() == pytest.approx([1000.05, 500.0, 0.0])
    assert check_sigmas([1.0, 0.0]).tolist() == [1.0, 0.0]


ON_THE_GRID = [(name, fraction) for name in sorted(SCHEDULES) if name != "release" for fraction in (0.25, 0.5, 0.8)]


@pytest.mark.parametrize("name, fraction", [("release", 0.5)] + ON_THE_GRID)
def test_a_schedule_through_its_sigmas_keeps_its_grid_and_its_switch(name, fraction):
    """From timesteps to sigmas (t / 1000, as the Schedule node gives them) and back, the grid is the same to
    float32 rounding and MA-CFG switches at the same step: on a grid point for the schedules that put it there,
    and for the release's rule at its fraction 0.5 (where the continuous switch marks the same steps)."""
    for steps in range(2, 40):
        grid = build(name, steps, 5.0, fraction)
        back = from_sigmas(grid.sigmas, 5.0, fraction)
        assert torch.allclose(back.keys, grid.keys, rtol=1e-6, atol=0)
        assert back.breaks == grid.breaks, steps


@pytest.mark.parametrize("external", [False, True])
def test_a_k_diffusion_style_euler_over_the_flat_state_is_the_packs_euler(tiny_model, external):
    """x <- x + (x - denoised) / sigma * (sigma_next - sigma) on the release's sigmas, over two requests."""
    requests = [random_request(Task.AVG, 11), random_request(Task.AVG, 12)]
    ours = sample(tiny_model, requests, FP32)
    sigmas = build("release", FP32.steps, FP32.shift, FP32.macfg_fraction).sigmas
    run = prepare(tiny_model, requests, FP32, sigmas=sigmas if external else None)
    denoise = Denoiser(run)
    x = denoise.noise()
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        denoised = denoise(x, s * x.new_ones(len(x)))
        x = x + (x - denoised) / s * (s_next - s)
    result = run.finish(*denoise.layout.unpack(x))
    assert rel_l2(result.video, ours.video) <= 1e-5 and rel_l2(result.audio, ours.audio) <= 1e-5
    assert torch.equal(result.video[:, :, :1], ours.video[:, :, :1])       # the reference frame written back


@pytest.mark.parametrize("solver", ["euler", "dpmpp_2m"])
def test_the_packs_solvers_run_on_sigmas_made_elsewhere(tiny_model, solver):
    """The release's sigmas given as a list: the same run to float32 rounding, restart at the switch included."""
    request = [random_request(Task.AVG, 5)]
    params = SamplingParams(steps=6, schedule_dtype=torch.float32, solver=solver)
    ours = sample(tiny_model, request, params)
    given = sample(tiny_model, request, params, sigmas=build("release", 6, 5.0, 0.5).sigmas)
    assert rel_l2(given.video, ours.video) <= 1e-5 and rel_l2(given.audio, ours.audio) <= 1e-5
