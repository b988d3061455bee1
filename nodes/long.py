"""Long talks: UniAVGen Extend (one more segment after a clip, on the long driver's seam timeline, stitched onto
it) and UniAVGen Long Sampler (a whole long job in one node through frontend/long.generate_long)."""
import torch

from uniavgen_core import units
from uniavgen_core.frontend.jobs import Inputs, JobError, Speaker, Speech, make_job
from uniavgen_core.frontend.long import (DEFAULT_OVERLAP, LONG_MAX_SECONDS, SPEAKING_RATE, continuation_inputs,
                                         generate_long, segment_after)
from uniavgen_core.model.memory import activation_bytes
from uniavgen_core.sampling.presets import CUSTOM

from . import host
from .common import CATEGORY, with_messages
from .parallel import ranks_of
from .inputs import _tokenizer
from .sampling import (TASK_CHOICES, check_roles, comfy_sampling_inputs, guidance_inputs, pack_sampling_inputs,
                       naming_loras, prepare, progress, run_sampler, source_inputs)

def overlap_input(tooltip: str):
    return ("INT", {"default": DEFAULT_OVERLAP, "min": 1, "max": 40, "tooltip": tooltip})


OVERLAP_TIP = ("Latent frames (4 pictures, 0.25 s each) of the clip so far that the new part starts from, given "
               "clean, so that face, voice and motion carry on across the seam (default 4: 1 s). At most the "
               "trained length less one frame.")


def _settings(steps, shift, video_cfg, audio_cfg, macfg_fraction, slg_layer) -> dict:
    return dict(steps=steps, shift=shift, video_cfg=video_cfg, audio_cfg=audio_cfg, macfg_fraction=macfg_fraction,
                slg_layer=slg_layer)


def _previous(latent, mel) -> tuple[torch.Tensor, torch.Tensor]:
    """The previous clip's LATENT (the Wan2.2 VAE's space, [1, C, F, h, w]) and mel ([1, S, 80]) -> the model's
    normalised latent [C, F, h, w] and the mel [S, 80], checked to be one clip's."""
    samples = latent.get("samples") if isinstance(latent, dict) else None
    rows = mel.get("mel") if isinstance(mel, dict) else None
    if not isinstance(samples, torch.Tensor) or samples.dim() != 5 or samples.shape[0] != 1:
        shape = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise JobError(f"latent: expected the LATENT of one clip from UniAVGen Sampler, Extend or Long Sampler "
                       f"([1, 48, frames, h, w]), got {shape}")
    if not isinstance(rows, torch.Tensor) or rows.dim() != 3 or rows.shape[0] != 1 or rows.shape[2] != units.N_MELS:
        raise JobError("mel: expected the UNIAVGEN_MEL of the same clip as the latent (the Sampler's mel output)")
    frames = samples.shape[2]
    wanted = units.mel_frames(units.video_frames(frames))
    if rows.shape[1] != wanted:
        raise JobError(f"the latent has {frames} latent frames ({units.video_frames(frames)} pictures), which "
                       f"take {wanted} mel rows, but the mel has {rows.shape[1]}: connect the latent and the mel "
                       f"of the same clip")
    if frames < 2:
        raise JobError("the previous clip has one picture: there is nothing to carry on from")
    return host.wan22_format().process_in(samples.float())[0].cpu(), rows[0].float().cpu()


class UniAVGenExtend:
    DESCRIPTION = ("Carries a clip on: generates the next part after the clip's last frames (overlap) and the "
                   "speech they cover, and outputs the whole clip so far, the old part unchanged and the new one "
                   "appended, so that Extend nodes chain and the result is decoded once. With a transcript it "
                   "continues talking (CONTINUATION); with driving audio it follows the recording on "
                   "(A2V_CONTINUATION); with a driving video it dubs the video on (V2A_CONTINUATION). Connect the "
                   "same recording or video as to the first Sampler: this node cuts the part after the clip so far "
                   "itself. The seams lie where UniAVGen Long Sampler puts them.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("LATENT", "UNIAVGEN_MEL")
    RETURN_NAMES = ("latent", "mel")
    FUNCTION = "extend"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("UNIAVGEN_MODEL", {"tooltip": "From UniAVGen Model Loader (the model that made the clip)."}),
            "speech": ("UNIAVGEN_SPEECH", {"tooltip": "The words of the new part only (UniAVGen Speech Text): the "
                       "next slice of the transcript. Audio-driven video (driving audio connected) needs none."}),
            "positive": ("CONDITIONING", {"tooltip": "Scene description, as for the Sampler."}),
            "negative": ("CONDITIONING", {"tooltip": "Negative description; the release uses an empty prompt."}),
            "latent": ("LATENT", {"tooltip": "The clip so far: the latent output of UniAVGen Sampler or of the "
                       "Extend before this one."}),
            "mel": ("UNIAVGEN_MEL", {"tooltip": "The mel of the same clip (the same node's mel output)."}),
            "overlap": overlap_input(OVERLAP_TIP),
            "duration_seconds": ("FLOAT", {"default": 0.0, "min": 0.0, "max": float(units.MAX_SECONDS), "step": 0.25,
                                 "tooltip": "Length of the new part, in steps of 0.25 s (4 pictures). 0: as long "
                                 "as makes the segment (overlap + new part) the model's trained length, as the "
                                 "Long Sampler does. A driving audio or video that ends sooner shortens it."}),
            **guidance_inputs(),
        }, "optional": {
            **source_inputs("The face of the first clip (UniAVGen Reference Image). Not needed for dubbing, which "
                            "uses the video's first frame.", "The whole recording the first clip was driven by "
                            "(UniAVGen Audio Encode, role driving audio): the new part follows it on from where the "
                            "clip so far ends.", "The whole video being dubbed (UniAVGen Video Encode): the new part "
                            "dubs it on from where the clip so far ends.", voice="A reference voice to clone, as "
                            "given to the first clip (UniAVGen Audio Encode, role reference voice)."),
            **comfy_sampling_inputs(), **pack_sampling_inputs(),
        }}

    def extend(self, model, speech, positive, negative, latent, mel, overlap, duration_seconds, steps, shift, seed,
               video_cfg, audio_cfg, macfg_fraction, slg_layer, reference=None, voice=None, driving_audio=None,
               driving_video=None, sampler=None, sigmas=None, preset=CUSTOM, solver="euler", schedule="release",
               cache=0.0):
        check_roles(voice, driving_audio)
        if driving_audio is not None and driving_video is not None:
            raise JobError("connect a driving audio (lip sync) or a driving video (dubbing), not both")
        params, caption, neg_caption, msg_captions, msg_sampling = prepare(
            model, positive, negative, _settings(steps, shift, video_cfg, audio_cfg, macfg_fraction, slg_layer),
            (preset, solver, schedule, cache), sampler, sigmas)
        video, rows = _previous(latent, mel)
        trained_frames = model.model.trained_frames
        messages: list[str] = []
        seg = segment_after(video.shape[1], overlap, duration_seconds, units.latent_frames(trained_frames),
                            None if driving_audio is None else driving_audio.prepared.wave.shape[-1],
                            None if driving_video is None else driving_video.latent.shape[1], messages)
        inputs = continuation_inputs(speech, caption, neg_caption, seed, seg, video, rows,
                                     None if reference is None else reference.latent,
                                     None if voice is None else voice.prepared.wave,
                                     None if driving_audio is None else driving_audio.prepared.wave,
                                     None if driving_video is None else driving_video.latent)
        job = make_job(inputs, trained_frames, model.model.diffusion_model.config.num_layers, params)
        result = run_sampler(model, job, params, sampler, sigmas)
        out = host.mm().intermediate_device()
        new = host.wan22_format().process_out(result.video.float()).to(out)
        samples = torch.cat([latent["samples"].float().to(out), new[:, :, seg.prior:]], dim=2)
        audio = torch.cat([mel["mel"].float().to(out), result.audio.float().to(out)[:, seg.prior_rows:]], dim=1)
        seconds = units.video_frames(samples.shape[2]) / units.FPS
        so_far = units.video_frames(video.shape[1]) / units.FPS
        messages.insert(0, f"{seg.new_seconds:.4g} s after the {so_far:.4g} s so far, from its last {seg.prior} "
                           f"latent frames: {seconds:.4g} s in all")
        return with_messages(({"samples": samples}, {"mel": audio, "seconds": seconds}),
                             msg_captions + job.messages + messages + msg_sampling)


def speaker(model, speech: Speech) -> Speaker:
    """speak(text) -> Speech for each segment's slice of a long transcript, with the same reference transcript."""
    return Speaker(_tokenizer(str(model.model.path)), speech.ref_text)


class UniAVGenLongSampler:
    DESCRIPTION = (f"Generates a long video with its speech in one node, up to {LONG_MAX_SECONDS // 60} minutes: "
                   f"the job is cut into segments of the model's trained length that overlap by a second, each "
                   f"carrying on from the one before, and stitched into one latent and one mel (decode them once). "
                   f"task auto picks a long talk from a transcript (AVG, or RAVG with a voice), lip sync to a long "
                   f"recording (A2V) or dubbing a long video (V2A). The length comes from the duration, else from "
                   f"the recording or the video, else from the transcript at an ordinary speaking rate (a line a "
                   f"segment when the text has line breaks). The progress bar runs over the whole job.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("LATENT", "UNIAVGEN_MEL")
    RETURN_NAMES = ("latent", "mel")
    FUNCTION = "generate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("UNIAVGEN_MODEL", {"tooltip": "From UniAVGen Model Loader."}),
            "speech": ("UNIAVGEN_SPEECH", {"tooltip": "The whole transcript (UniAVGen Speech Text); each segment "
                       "gets the next whole sentences, or the next line when the text has line breaks. Lip sync "
                       "(A2V) needs none."}),
            "positive": ("CONDITIONING", {"tooltip": "Scene description, as for the Sampler; every segment uses it."}),
            "negative": ("CONDITIONING", {"tooltip": "Negative description; the release uses an empty prompt."}),
            "task": (TASK_CHOICES, {"default": "auto", "tooltip": "auto picks the task from the connected inputs; "
                     "every later segment is its continuation."}),
            "duration_seconds": ("FLOAT", {"default": 0.0, "min": 0.0, "max": float(LONG_MAX_SECONDS), "step": 0.25,
                                 "tooltip": f"Length of the whole video, at most {LONG_MAX_SECONDS} s. 0: the "
                                 f"driving video's, else the driving audio's, else as long as the transcript takes "
                                 f"to say. With a duration, a transcript is spread over the segments by time."}),
            "overlap": overlap_input(OVERLAP_TIP),
            "chars_per_second": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 40.0, "step": 0.5, "tooltip":
                                 f"Speaking rate that packs the transcript into segments when it sets the length "
                                 f"(characters a second; Chinese: syllables). 0: an ordinary one "
                                 f"({SPEAKING_RATE['en']:g}; Chinese {SPEAKING_RATE['zh']:g})."}),
            **guidance_inputs(),
        }, "optional": {
            **source_inputs("The face (UniAVGen Reference Image), the same for every segment. Not needed for "
                            "dubbing, which uses the video's first frame.", "A long recording to lip-sync the video "
                            "to (UniAVGen Audio Encode, role driving audio).", "A long video to dub (UniAVGen Video "
                            "Encode)."),
            "sigmas": comfy_sampling_inputs()["sigmas"],
            **pack_sampling_inputs(),
        }}

    def generate(self, model, speech, positive, negative, task, duration_seconds, overlap, chars_per_second, steps,
                 shift, seed, video_cfg, audio_cfg, macfg_fraction, slg_layer, reference=None, voice=None,
                 driving_audio=None, driving_video=None, sigmas=None, preset=CUSTOM, solver="euler",
                 schedule="release", cache=0.0):
        check_roles(voice, driving_audio)
        params, caption, neg_caption, msg_captions, msg_sampling = prepare(
            model, positive, negative, _settings(steps, shift, video_cfg, audio_cfg, macfg_fraction, slg_layer),
            (preset, solver, schedule, cache), None, sigmas)
        wave = lambda audio: None if audio is None else audio.prepared.wave
        inputs = Inputs(speech, caption, neg_caption, seed, task, duration_seconds or None,
                        reference=None if reference is None else reference.latent, voice=wave(voice),
                        driving_audio=wave(driving_audio),
                        driving_video=None if driving_video is None else driving_video.latent)
        result = run_long(model, inputs, params, speaker(model, speech), overlap, chars_per_second or None, sigmas)
        out = host.mm().intermediate_device()
        latent = host.wan22_format().process_out(result.video[None].float()).to(out)
        mel = {"mel": result.audio[None].float().to(out), "seconds": result.seconds}
        shown = [f"segment {i + 1}: “{text}”" for i, text in enumerate(result.texts)] if len(result.texts) > 1 and \
            speech.text.strip() and result.tasks[0].name != "A2V" else []
        return with_messages(({"samples": latent}, mel), msg_captions + result.messages + shown + msg_sampling)


def run_long(model, inputs: Inputs, params, speak, overlap: int, chars_per_second, sigmas):
    """generate_long on ComfyUI's device with its memory manager, one progress bar over every step of every segment
    (with previews) and its interrupt; on the ranks of a model from UniAVGen Parallel Devices."""
    mm = host.mm()
    device = mm.get_torch_device()
    net = model.model.diffusion_model
    trained = model.model.trained_frames
    report = progress(device, params.steps if sigmas is None else len(sigmas) - 1)
    on_step = lambda p: report(p.segment * p.step.steps + p.step.step, p.segments * p.step.steps,
                               p.step.denoised_video)
    ranks = ranks_of(model)
    if ranks is not None:
        ranks.check(model, params, units.latent_frames(trained))
        return ranks.long(inputs, trained, params, on_step, speak=speak, overlap=overlap,
                          chars_per_second=chars_per_second, sigmas=sigmas)
    mm.load_models_gpu([model], memory_required=activation_bytes(
        net.config, units.latent_frames(trained), *reference_size(inputs), units.mel_frames(trained), batch=2,
        dtype_bytes=net.compute_dtype.itemsize, ref_mel_frames=0))
    with naming_loras(model):
        return generate_long(net, inputs, trained, params, speak=speak, overlap=overlap,
                             chars_per_second=chars_per_second, progress=on_step, device=device, sigmas=sigmas)


def reference_size(inputs: Inputs) -> tuple[int, int]:
    """The latent height and width the job samples at (for the memory estimate)."""
    source = inputs.reference if inputs.reference is not None else inputs.driving_video
    if source is None:
        raise JobError("this task needs a reference face: connect UniAVGen Reference Image (or a driving video to "
                       "dub)")
    return tuple(source.shape[2:])
