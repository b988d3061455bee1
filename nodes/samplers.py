"""ComfyUI's samplers (a SAMPLER from KSamplerSelect or any sampler node) over UniAVGen's joint state: the core's
flat denoiser (uniavgen_core/sampling/flat.py) behind the model wrapper a SAMPLER calls."""
from types import SimpleNamespace

import torch

from uniavgen_core.sampling import Denoiser, Request, SampleResult, SamplingParams, prepare

from . import host


class SamplerError(RuntimeError):
    pass


def sampler_name(sampler) -> str:
    """A KSAMPLER's sampling function without its prefix (euler, dpmpp_2m, unipc); else the object's class."""
    function = getattr(sampler, "sampler_function", None)
    return getattr(function, "__name__", type(sampler).__name__).removeprefix("sample_")


class ModelWrap:
    """What a SAMPLER calls as its model, in place of ComfyUI's guider: the denoiser, with the flow model sampling
    where ComfyUI's samplers look for it (`inner_model.model_sampling`, `model_patcher.get_model_object`)."""

    def __init__(self, denoiser: Denoiser, model_sampling):
        self.denoiser = denoiser
        self.inner_model = SimpleNamespace(model_sampling=model_sampling)
        self.model_patcher = SimpleNamespace(get_model_object={"model_sampling": model_sampling}.__getitem__)

    def __call__(self, x, sigma, model_options={}, seed=None, **kwargs):
        hooks = sorted(k for k in model_options if k.startswith("sampler_"))
        if hooks:       # e.g. the CFG++ samplers read the unconditional prediction through such a hook
            raise SamplerError(f"it hooks into ComfyUI's CFG ({', '.join(hooks)}), and UniAVGen's guidance is its own")
        return self.denoiser(x, sigma)


def drive(sampler, net, request: Request, params: SamplingParams, sigmas, device, on_step) -> SampleResult:
    """One request sampled by a ComfyUI SAMPLER from the request's seeded noise, on `sigmas` (1 to 0; None: the
    release's schedule for the parameters' steps and shift). on_step(step, steps, denoised video)."""
    run = prepare(net, [request], params, capture_face_masks=True, device=device, sigmas=sigmas)
    denoiser = Denoiser(run)
    levels = (run.schedule.sigmas if sigmas is None else sigmas).to(device=device, dtype=torch.float32)
    noise = denoiser.noise()
    callback = lambda i, denoised, x, steps: on_step(i, steps, denoiser.layout.unpack(denoised)[0])
    name = sampler_name(sampler)
    try:
        flat = sampler.sample(ModelWrap(denoiser, host.flow_model_sampling(params.shift)), levels,
                              {"seed": request.seed}, callback, noise, latent_image=torch.zeros_like(noise),
                              disable_pbar=True)
    except SamplerError as err:
        raise SamplerError(f"ComfyUI's sampler '{name}' cannot drive UniAVGen: {err}; choose another sampler, or "
                           f"disconnect 'sampler' for the pack's own") from None
    except (AttributeError, TypeError) as err:
        raise SamplerError(f"ComfyUI's sampler '{name}' cannot drive UniAVGen: it needs a part of a ComfyUI MODEL "
                           f"that UniAVGen's joint audio-video model does not have ({type(err).__name__}: {err}). "
                           f"Choose another sampler (euler, heun, dpmpp_2m, ...), or disconnect 'sampler' for the "
                           f"pack's own") from err
    finally:
        run.park()
    return run.finish(*denoiser.layout.unpack(flat.float()), denoiser.face_masks)
