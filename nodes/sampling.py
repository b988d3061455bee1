"""The sampler node: one UniAVGen generation, video latent + mel + face masks out."""

from uniavgen_core import units
from uniavgen_core.audio.inputs import fit_to_frames
from uniavgen_core.frontend.jobs import JobError, build_job, caption_features, choose_task, frame_masks
from uniavgen_core.model.memory import activation_bytes
from uniavgen_core.sampling import SamplingParams, Task, sample

from . import host
from .common import CATEGORY, with_messages
from .inputs import DRIVING, VOICE
from .lora import APPLIED

TASKS = ["auto", "AVG", "RAVG", "A2V", "V2A"]


class UniAVGenSampler:
    DESCRIPTION = ("Generates video and speech together. task auto picks joint generation (AVG), voice cloning "
                   "(RAVG, a voice is connected), audio-driven video (A2V, driving audio) or dubbing (V2A, a "
                   "driving video). Outputs a Wan2.2 LATENT for the native VAEDecode, the mel for "
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
            "task": (TASKS, {"default": "auto", "tooltip": "auto picks the task from the connected inputs."}),
            "duration_seconds": ("FLOAT", {"default": 5.0625, "min": 0.3125, "max": float(units.MAX_SECONDS),
                                 "step": 0.0625, "tooltip": "Length of the clip (rounded to 4k+1 frames at 16 fps). "
                                 "Best near the clip length the loaded model was trained on, which the Model "
                                 "Loader's message shows (the release: 5.06 s, UniAVGen-mini: 3.06 s); this "
                                 "node says so past 1.5 times that. Dubbing (V2A) follows the video: a shorter "
                                 "duration dubs only its start."}),
            "steps": ("INT", {"default": 50, "min": 1, "max": 200, "tooltip": "Denoising steps (release: 50; "
                      "UniAVGen-mini: 16)."}),
            "shift": ("FLOAT", {"default": 5.0, "min": 0.1, "max": 20.0, "step": 0.1, "tooltip":
                      "Timestep shift of the flow-matching schedule (release: 5)."}),
            "seed": ("INT", {"default": 2025, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                     "tooltip": "Noise seed; the noise is drawn on the CPU, so a seed gives the same clip on any "
                                "GPU."}),
            "video_cfg": ("FLOAT", {"default": 3.0, "min": 1.0, "max": 20.0, "step": 0.1, "tooltip":
                          "Guidance strength for the video (release: 3)."}),
            "audio_cfg": ("FLOAT", {"default": 2.0, "min": 1.0, "max": 20.0, "step": 0.1, "tooltip":
                          "Guidance strength for the audio (release: 2; UniAVGen-mini: 4)."}),
            "macfg_fraction": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip":
                               "Modality-aware CFG: fraction of the first steps whose unconditional pass has no "
                               "audio-video interaction, which strengthens lip sync (release: 0.5)."}),
            "slg_layer": ("INT", {"default": 11, "min": -1, "max": 29, "tooltip":
                          "Layer skipped in the unconditional pass (skip-layer guidance; release: 11). -1 or 0 "
                          "turns it off, and so does a layer the model does not have (UniAVGen-mini has 6 and is "
                          "tuned with -1)."}),
        }, "optional": {
            "reference": ("UNIAVGEN_REFERENCE", {"tooltip": "The face (UniAVGen Reference Image). Not needed for "
                          "dubbing, which uses the video's first frame."}),
            "voice": ("UNIAVGEN_AUDIO", {"tooltip": "A reference voice to clone (UniAVGen Audio Encode)."}),
            "driving_audio": ("UNIAVGEN_AUDIO", {"tooltip": "Speech to lip-sync the video to (UniAVGen Audio "
                              "Encode, role driving audio)."}),
            "driving_video": ("UNIAVGEN_VIDEO", {"tooltip": "A video to dub (UniAVGen Video Encode)."}),
        }}

    def generate(self, model, speech, positive, negative, task, duration_seconds, steps, shift, seed, video_cfg,
                 audio_cfg, macfg_fraction, slg_layer, reference=None, voice=None, driving_audio=None,
                 driving_video=None):
        for name, value, role in (("voice", voice, VOICE), ("driving_audio", driving_audio, DRIVING)):
            if value is not None and value.role != role:
                raise JobError(f"the audio connected to '{name}' was encoded as '{value.role}'; set the Audio "
                               f"Encode node's role to '{role}'")
        params = SamplingParams(steps=steps, shift=shift, video_cfg=video_cfg, audio_cfg=audio_cfg,
                                macfg_fraction=macfg_fraction, slg_layer=slg_layer)     # checked before any work
        chosen = choose_task(task, voice is not None, driving_audio is not None, driving_video is not None)
        messages = [f"task: {chosen.name}"]
        if chosen == Task.V2A:
            longest = units.MAX_SECONDS * units.FPS + 1
            whole = units.Duration.from_video_frames(min(driving_video.frames, longest))
            wanted = units.Duration.from_seconds(duration_seconds)
            if wanted.video_frames < whole.video_frames:
                duration = wanted
                messages.append(f"dubbing the first {wanted.seconds:.4g} s of the {whole.seconds:.4g} s video")
            else:
                duration = whole
                if wanted.video_frames > whole.video_frames:
                    messages.append(f"the video is {whole.seconds:.4g} s long: dubbing all of it")
            reference = reference or driving_video.reference
        else:
            duration = units.Duration.from_seconds(duration_seconds)
        if reference is None:
            raise JobError(f"task {chosen.name} needs a reference face: connect UniAVGen Reference Image")
        trained = units.Duration.from_video_frames(model.model.trained_frames)
        if duration.video_frames > 1.5 * trained.video_frames:
            messages.append(f"{duration.seconds:.2f} s is far past the {trained.seconds:.2f} s this model was trained "
                            f"on: expect the face and the voice to drift; chain clips for longer videos (the "
                            f"long-form workflow)")
        net = model.model.diffusion_model
        cfg = net.config
        if slg_layer >= cfg.num_layers:
            messages.append(f"skip-layer guidance off: layer {slg_layer} is beyond this model's "
                            f"{cfg.num_layers} layers")
        caption, msg_pos = caption_features(positive, cfg.text_dim, cfg.text_len, "positive")
        neg_caption, msg_neg = caption_features(negative, cfg.text_dim, cfg.text_len, "negative")
        drive = None
        if chosen == Task.A2V:
            drive, fitted = fit_to_frames(driving_audio.prepared.wave, duration.mel_frames)
            messages += fitted
        if chosen == Task.RAVG and not speech.ref_text:
            messages.append("voice cloning without the reference transcript: give it in Speech Text for "
                            "better timbre")
        job = build_job(chosen, speech, caption, neg_caption, reference.latent, duration, seed,
                        voice_wave=voice.prepared.wave if voice is not None else None, driving_wave=drive,
                        video_latent=driving_video.latent if driving_video is not None else None)
        messages += msg_pos + msg_neg + job.messages

        mm = host.mm()
        device = mm.get_torch_device()
        _, h, w = reference.latent.shape[1:]
        ref_mel = job.request.condition.ref_len
        needed = activation_bytes(cfg, duration.latent_frames, h, w, duration.mel_frames, batch=2,
                                  dtype_bytes=net.compute_dtype.itemsize, ref_mel_frames=ref_mel)
        mm.load_models_gpu([model], memory_required=needed)
        bar = host.progress_bar(steps)
        previewer = host.previewer(device)

        def on_step(info):
            mm.throw_exception_if_processing_interrupted()
            preview = None
            if previewer is not None:
                preview = previewer.decode_latent_to_preview_image("JPEG", info.denoised_video[:1].float())
            bar.update_absolute(info.step + 1, info.steps, preview)

        try:
            result = sample(net, [job.request], params, callback=on_step, capture_face_masks=True, device=device)
        except FloatingPointError as err:
            loras = model.model_options.get(APPLIED)
            if not loras:
                raise
            raise FloatingPointError(f"{err}. LoRAs applied: {', '.join(loras)}; try without them or at a lower "
                                     f"strength") from None
        out = mm.intermediate_device()
        latent = host.wan22_format().process_out(result.video.float()).to(out)
        mel = {"mel": result.audio.float().to(out), "seconds": duration.seconds}
        masks = frame_masks(result.face_masks[0], h * 16, w * 16).to(out)
        return with_messages(({"samples": latent}, mel, masks), messages)

