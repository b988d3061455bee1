"""The sampler node: one UniAVGen generation, video latent + mel + face masks out; the schedule node: its
noise levels as ComfyUI SIGMAS."""

import contextlib

import torch

from uniavgen_core import units
from uniavgen_core.frontend.jobs import Inputs, JobError, frame_masks, make_job
from uniavgen_core.model.memory import activation_bytes
from uniavgen_core.sampling import SCHEDULES, SamplingParams, sample
from uniavgen_core.sampling.presets import CUSTOM, PRESETS, choose, solver_choices
from uniavgen_core.sampling.schedule import build, check_sigmas
from uniavgen_core.sampling.tasks import TASKS

from . import host, samplers
from .common import CATEGORY, with_messages
from .inputs import DRIVING, VOICE
from .lora import APPLIED
from .parallel import ranks_of

# the tasks whose inputs this node has (continuation, which needs a prior clip, is not one of them)
TASK_CHOICES = ["auto"] + [task.name for task, spec in TASKS.items()
                           if set(spec.needs) <= {"voice", "driving_audio", "driving_video"}]


def steps_input(tooltip: str):
    return ("INT", {"default": 50, "min": 1, "max": 200, "tooltip": tooltip})


def shift_input(tooltip: str):
    return ("FLOAT", {"default": 5.0, "min": 0.1, "max": 20.0, "step": 0.1, "tooltip": tooltip})


def fraction_input(tooltip: str):
    return ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip": tooltip})


STEPS_TIP = "Denoising steps (release: 50; UniAVGen-mini: 16); a named preset, or sigmas when connected, set them."
SCHEDULE_TIP = ("release: the released timesteps. shifted: the same shape with MA-CFG's switch moved onto a step. "
                "beta: denser at both ends (Beta(0.6, 0.6) quantiles), the switch on a step. beta_clean: Beta(0.55, "
                "0.6), leaning to the clean end (preset fast's).")


def comfy_sampling_inputs() -> dict:
    """The Sampler's optional inputs from ComfyUI's sampling nodes."""
    return {
        "sampler": ("SAMPLER", {"tooltip": "A ComfyUI sampler (KSamplerSelect or any sampler node) in place of the "
                    "pack's own solver (the solver input or a preset's), run over the joint video and audio with "
                    "UniAVGen's guidance. Without sigmas it steps through the chosen schedule for steps and shift; "
                    "the step cache still applies. Its multistep samplers do not restart at MA-CFG's switch as the "
                    "pack's own solvers do; samplers that hook into ComfyUI's CFG (the cfg_pp ones) are refused."}),
        "sigmas": ("SIGMAS", {"tooltip": "Noise levels from 1 (noise) to 0 (clean) in place of the schedule (the "
                   "schedule input or a preset's): UniAVGen Schedule, or a sigma node set for a flow model "
                   "(KarrasScheduler or ExponentialScheduler with sigma_max 1). Their count sets the steps; without a "
                   "sampler the pack's own solver steps through them; the step cache still applies."}),
    }


VOICE_TIP = "A reference voice to clone (UniAVGen Audio Encode)."


def source_inputs(reference: str, driving_audio: str, driving_video: str, voice: str = VOICE_TIP) -> dict:
    """The optional face, voice, driving audio and driving video a sampling node takes, with its tooltips."""
    return {"reference": ("UNIAVGEN_REFERENCE", {"tooltip": reference}),
            "voice": ("UNIAVGEN_AUDIO", {"tooltip": voice}),
            "driving_audio": ("UNIAVGEN_AUDIO", {"tooltip": driving_audio}),
            "driving_video": ("UNIAVGEN_VIDEO", {"tooltip": driving_video})}


def pack_sampling_inputs() -> dict:
    """The Sampler's optional choices of the pack's own sampling: a preset, or solver, schedule and cache."""
    presets = "; ".join(f"{name}: {preset.describe()}" for name, preset in PRESETS.items())
    return {
        "preset": ([CUSTOM] + list(PRESETS), {"default": CUSTOM, "tooltip": f"{CUSTOM}: steps, solver, schedule and "
                   f"cache as set on this node. A named preset sets all four together (the guidance stays as set): "
                   f"{presets}. Connected sigmas still replace its steps and schedule, a connected sampler its "
                   f"solver."}),
        "solver": (solver_choices(), {"default": "euler", "tooltip": "The pack's own update from one step to the "
                   "next (preset custom). euler: the release's. ab2, dpmpp_2m and unipc (order 2, bh2, as Wan "
                   "samples): second order at the same cost, restarting at MA-CFG's switch (best on the shifted "
                   "or a beta schedule); unipc_bh1: UniPC's other variant; unipc_order3: third order. adams: "
                   "Adams-Bashforth 2 on the velocity with the Adams-Moulton corrector (no extra cost); "
                   "adams_order3: its third order; ab3: third order without the corrector; adams_unipc_dubbing: "
                   "adams, a given video's audio (dubbing) stepped by unipc up to MA-CFG's switch (preset fast's). "
                   "heun: second "
                   "order, two model evaluations a step. A connected sampler replaces it."}),
        "schedule": (list(SCHEDULES), {"default": "release", "tooltip": "The timesteps the steps run through (preset "
                     f"custom). {SCHEDULE_TIP} Connected sigmas replace it."}),
        "cache": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Audio-video-aware "
                  "step cache (preset custom): a guidance pass is skipped while its estimated effect stays under "
                  "this threshold, checked for the video and the audio separately (either one moving more runs it): "
                  "the conditional pass reuses its last velocity, the unconditional one is rebuilt from the fresh "
                  "conditional velocity and the last guidance difference. 0 is off: every pass runs, as released. "
                  "Larger skips more passes and strays further; it pays most when the audio is given (A2V: 0.05 "
                  "with 16-20 steps of adams on beta). It applies with a connected sampler or sigmas too."}),
    }


def guidance_inputs() -> dict:
    """The Sampler's steps, shift, seed and guidance widgets, in its order (the Extend and Long Sampler nodes share
    them)."""
    return {
        "steps": steps_input(STEPS_TIP),
        "shift": shift_input("Timestep shift of the flow-matching schedule (release: 5); with sigmas connected, "
                             "it places MA-CFG's switch only."),
        "seed": ("INT", {"default": 2025, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                 "tooltip": "Noise seed; the noise is drawn on the CPU: a seed gives the same clip on any GPU."}),
        "video_cfg": ("FLOAT", {"default": 3.0, "min": 1.0, "max": 20.0, "step": 0.1, "tooltip":
                      "Guidance strength for the video (release: 3; UniAVGen-mini: 1.5)."}),
        "audio_cfg": ("FLOAT", {"default": 2.0, "min": 1.0, "max": 20.0, "step": 0.1, "tooltip":
                      "Guidance strength for the audio (release: 2; UniAVGen-mini: 2)."}),
        "macfg_fraction": fraction_input("Modality-aware CFG: fraction of the first steps whose unconditional "
                                         "pass has no audio-video interaction, which strengthens lip sync "
                                         "(release: 0.5); with sigmas, on above where the release's ends."),
        "slg_layer": ("INT", {"default": 11, "min": -1, "max": 29, "tooltip":
                      "Layer skipped in the unconditional pass (skip-layer guidance; release: 11). -1 or 0 "
                      "turns it off, and so does a layer the model does not have (UniAVGen-mini has 6 and is "
                      "tuned with -1)."}),
    }


def check_roles(voice, driving_audio) -> None:
    for name, value, role in (("voice", voice, VOICE), ("driving_audio", driving_audio, DRIVING)):
        if value is not None and value.role != role:
            raise JobError(f"the audio connected to '{name}' was encoded as '{value.role}'; set the Audio "
                           f"Encode node's role to '{role}'")


def prepare(model, positive, negative, settings: dict, choices: tuple, sampler=None, sigmas=None):
    """The checks and conversions every sampling node makes before any work: sigmas, sampling parameters and the
    captions -> (params, caption, neg_caption, caption messages, sampling messages)."""
    if sigmas is not None:
        try:
            check_sigmas(sigmas)
        except ValueError as err:
            raise JobError(f"{err} (or connect UniAVGen Schedule, which makes this model's sigmas)") from None
    params, msg_sampling = sampling_params(settings, choices, sampler, sigmas)
    cfg = model.model.diffusion_model.config
    caption, msg_pos = caption_features(positive, cfg.text_dim, cfg.text_len, "positive")
    neg_caption, msg_neg = caption_features(negative, cfg.text_dim, cfg.text_len, "negative")
    return params, caption, neg_caption, msg_pos + msg_neg, msg_sampling


class UniAVGenSampler:
    DESCRIPTION = ("Generates video and speech together. task auto picks joint generation (AVG), voice cloning "
                   "(RAVG, a voice is connected), audio-driven video (A2V, driving audio) or dubbing (V2A, a "
                   "driving video). Samples with a preset, or the solver, schedule and step cache chosen (the "
                   "release's Euler by default). Outputs a Wan2.2 LATENT for the native VAEDecode, the mel for "
                   "UniAVGen Audio Decode, and the face mask the model attends to, per frame.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("LATENT", "UNIAVGEN_MEL", "MASK")
    RETURN_NAMES = ("latent", "mel", "face_mask")
    FUNCTION = "generate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("UNIAVGEN_MODEL", {"tooltip": "From UniAVGen Model Loader."}),
            "speech": ("UNIAVGEN_SPEECH", {"tooltip": "From UniAVGen Speech Text."}),
            "positive": ("CONDITIONING", {"tooltip": "Scene description: CLIPTextEncode with the umT5 text "
                         "encoder (CLIPLoader, type wan)."}),
            "negative": ("CONDITIONING", {"tooltip": "Negative description; the release uses an empty prompt."}),
            "task": (TASK_CHOICES, {"default": "auto", "tooltip": "auto picks the task from the connected inputs."}),
            "duration_seconds": ("FLOAT", {"default": 5.0625, "min": 0.3125, "max": float(units.MAX_SECONDS),
                                 "step": 0.0625, "tooltip": "Length of the clip (rounded to 4k+1 frames at 16 fps). "
                                 "Best near the clip length the loaded model was trained on, which the Model "
                                 "Loader's message shows (the release: 5.06 s, UniAVGen-mini: 3.06 s); this "
                                 "node says so past 1.5 times that. Dubbing (V2A) follows the video: a shorter "
                                 "duration dubs only its start."}),
            **guidance_inputs(),
        }, "optional": {
            **source_inputs("The face (UniAVGen Reference Image). Not needed for dubbing, which uses the video's "
                            "first frame.", "Speech to lip-sync the video to (UniAVGen Audio Encode, role driving "
                            "audio).", "A video to dub (UniAVGen Video Encode)."),
            **comfy_sampling_inputs(), **pack_sampling_inputs(),     # last: saved workflows keep their widget order
        }}

    def generate(self, model, speech, positive, negative, task, duration_seconds, steps, shift, seed, video_cfg,
                 audio_cfg, macfg_fraction, slg_layer, reference=None, voice=None, driving_audio=None,
                 driving_video=None, sampler=None, sigmas=None, preset=CUSTOM, solver="euler", schedule="release",
                 cache=0.0):
        check_roles(voice, driving_audio)
        params, caption, neg_caption, msg_captions, msg_sampling = prepare(
            model, positive, negative, dict(steps=steps, shift=shift, video_cfg=video_cfg, audio_cfg=audio_cfg,
                                            macfg_fraction=macfg_fraction, slg_layer=slg_layer),
            (preset, solver, schedule, cache), sampler, sigmas)
        cfg = model.model.diffusion_model.config
        wave = lambda audio: None if audio is None else audio.prepared.wave
        inputs = Inputs(speech, caption, neg_caption, seed, task, duration_seconds,
                        reference=None if reference is None else reference.latent, voice=wave(voice),
                        driving_audio=wave(driving_audio),
                        driving_video=None if driving_video is None else driving_video.latent)
        job = make_job(inputs, model.model.trained_frames, cfg.num_layers, params)
        result = run_sampler(model, job, params, sampler, sigmas)
        out = host.mm().intermediate_device()
        latent = host.wan22_format().process_out(result.video.float()).to(out)
        mel = {"mel": result.audio.float().to(out), "seconds": job.duration.seconds}
        height, width = units.pixel_size(job.request.latent_size)
        masks = frame_masks(result.face_masks[0], height, width).to(out)
        return with_messages(({"samples": latent}, mel, masks), msg_captions + job.messages + msg_sampling)


def sampling_params(settings: dict, choices: tuple, sampler=None, sigmas=None) -> tuple[SamplingParams, list]:
    """SamplingParams from the Sampler's settings and its (preset, solver, schedule, cache), with the messages on
    what a connected sampler or sigmas replace; what is wrong as a JobError, before any work."""
    replaced_by = None if sampler is None else f"ComfyUI's sampler '{samplers.sampler_name(sampler)}'"
    try:
        return choose(SamplingParams(**settings), *choices, replaced_by, None if sigmas is None else len(sigmas) - 1)
    except ValueError as err:
        raise JobError(str(err)) from None


def run_sampler(model, job, params: SamplingParams, sampler=None, sigmas=None):
    """Samples one job on ComfyUI's device with its memory manager, progress bar, previews and interrupt: with the
    pack's own solver, or a ComfyUI SAMPLER when one is given; on `sigmas` when given. A model from UniAVGen
    Parallel Devices samples on its ranks instead."""
    mm = host.mm()
    device = mm.get_torch_device()
    net = model.model.diffusion_model
    r = job.request
    report = progress(device, params.steps if sigmas is None else len(sigmas) - 1)
    ranks = ranks_of(model)
    if ranks is not None:
        ranks.check(model, params, r.latent_frames, sampler)
        return ranks.sample(r, params, sigmas, report)
    needed = activation_bytes(net.config, r.latent_frames, *r.latent_size, r.mel_frames, batch=2,
                              dtype_bytes=net.compute_dtype.itemsize, ref_mel_frames=r.condition.ref_len)
    mm.load_models_gpu([model], memory_required=needed)
    with naming_loras(model):
        if sampler is not None:
            return samplers.drive(sampler, net, r, params, sigmas, device, report)
        return sample(net, [r], params, callback=lambda info: report(info.step, info.steps, info.denoised_video),
                      capture_face_masks=True, device=device, sigmas=sigmas)


@contextlib.contextmanager
def naming_loras(model):
    """An overflow while sampling names the LoRAs applied to `model`, the likely cause, when there are any."""
    try:
        yield
    except FloatingPointError as err:
        loras = model.model_options.get(APPLIED)
        if not loras:
            raise
        raise FloatingPointError(f"{err}. LoRAs applied: {', '.join(loras)}; try without them or at a lower "
                                 f"strength") from None


def progress(device, steps: int):
    """on_step(step, steps, denoised video): interrupt, progress bar and preview after each step."""
    mm = host.mm()
    bar = host.progress_bar(steps)
    previewer = host.previewer(device)

    def on_step(step, total, denoised_video):
        mm.throw_exception_if_processing_interrupted()
        preview = None
        if previewer is not None:
            preview = previewer.decode_latent_to_preview_image("JPEG", denoised_video[:1].float())
        bar.update_absolute(step + 1, total, preview)
    return on_step


class UniAVGenSchedule:
    DESCRIPTION = ("The noise levels (SIGMAS, from 1 to 0) of a UniAVGen schedule, for the Sampler's sigmas input "
                   "and ComfyUI's sigma tools. release: the released grid; shifted, beta and beta_clean put MA-CFG's "
                   "switch on a step.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("SIGMAS",)
    RETURN_NAMES = ("sigmas",)
    FUNCTION = "sigmas"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "steps": steps_input("Steps: the list holds one more noise level (release: 50; UniAVGen-mini: 16)."),
            "shift": shift_input("Timestep shift (release: 5); set the Sampler's shift to the same value."),
            "schedule": (list(SCHEDULES), {"default": "release", "tooltip": SCHEDULE_TIP}),
            "macfg_fraction": fraction_input("Where MA-CFG switches off, as on the Sampler (release: 0.5): shifted, "
                                             "beta and beta_clean put a step there. Set the Sampler's to the same "
                                             "value."),
        }}

    def sigmas(self, steps, shift, schedule, macfg_fraction):
        return (build(schedule, steps, shift, macfg_fraction).sigmas.float().cpu(),)


def caption_features(conditioning, text_dim: int, text_len: int, what: str):
    """ComfyUI CONDITIONING from CLIPTextEncode (umT5, zero rows past the prompt) -> ([rows, text_dim], messages)."""
    try:
        features = conditioning[0][0]
    except (TypeError, IndexError, KeyError):
        raise JobError(f"{what}: expected a CONDITIONING from CLIPTextEncode") from None
    if not isinstance(features, torch.Tensor) or features.dim() != 3 or features.shape[-1] != text_dim:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise JobError(f"{what}: conditioning of shape {shape}; UniAVGen needs umT5-XXL features of width "
                       f"{text_dim} (CLIPLoader with type 'wan' and umt5_xxl)")
    features = features[0]
    # ComfyUI pads the prompt with zero rows to 512; the model pads with zero rows itself, so
    # dropping them changes nothing and tells the model how many rows are real.
    rows = int(features.abs().sum(dim=-1).nonzero().max()) + 1 if bool(features.any()) else 0
    messages = [f"{what}: the prompt is longer than {text_len} tokens; the rest is ignored"] if rows > text_len else []
    return features[: min(rows, text_len)].float(), messages
