"""The shipped workflows, defined once. tools/build_workflows.py writes them in ComfyUI's UI format
(workflows/*.json, what users drag in) and API format (workflows/api/*.json, for /prompt).

A graph is {id: (class_type, {input: value or (source_id, output_index)})}."""

DIT = "UniAVGen/"
VOCODER = "code2wav_bigvgan_model/"
VAE = "wan2.2_vae.safetensors"
UMT5 = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
DOWNLOADS = {DIT, VOCODER, VAE, UMT5}         # model files the user downloads (README); the pack ships the rest
CAPTION = ("A young woman with shoulder-length dark hair sits in a softly lit room and speaks warmly to the "
           "camera, natural head movement, realistic lighting.")
TEXT = "Over the past week it has been raining nonstop, but the sun is finally breaking through today!"
SAMPLER = dict(task="auto", duration_seconds=5.0625, steps=50, shift=5.0, seed=2025, video_cfg=3.0, audio_cfg=2.0,
               macfg_fraction=0.5, slg_layer=11)


def _models(g):
    g[1] = ("UniAVGenModelLoader", dict(model=DIT, weight_dtype="auto", attention="auto", block_swap=0,
                                        compile=False))
    g[2] = ("UniAVGenVocoderLoader", dict(vocoder=VOCODER, precision="fp32"))
    g[3] = ("VAELoader", dict(vae_name=VAE))
    g[4] = ("CLIPLoader", dict(clip_name=UMT5, type="wan", device="default"))
    g[5] = ("CLIPTextEncode", dict(text=CAPTION, clip=(4, 0)))
    g[6] = ("CLIPTextEncode", dict(text="", clip=(4, 0)))


def _reference(g, node_id, image):
    g[node_id] = ("UniAVGenReferenceImage", dict(image=image, vae=(3, 0), resolution="official (short side 736)",
                                                short_side=480, crop="none", aspect="keep"))


def _video(g, sampler, first_id, prefix):
    """Decode video (VAE: node 3) and audio (vocoder: node 2), mux them, save the mp4."""
    g[first_id] = ("VAEDecode", dict(samples=(sampler, 0), vae=(3, 0)))
    g[first_id + 1] = ("UniAVGenAudioDecode", dict(vocoder=(2, 0), mel=(sampler, 1)))
    g[first_id + 2] = ("CreateVideo", dict(images=(first_id, 0), fps=16.0, audio=(first_id + 1, 0)))
    g[first_id + 3] = ("SaveVideo", dict(video=(first_id + 2, 0), filename_prefix=f"UniAVGen/{prefix}", format="auto",
                                         codec="auto"))


def _outputs(g, sampler, first_id, prefix):
    """The mp4, plus the audio and the face mask (one silent mp4, not a picture per frame) on their own."""
    _video(g, sampler, first_id, prefix)
    g[first_id + 4] = ("SaveAudio", dict(audio=(first_id + 1, 0), filename_prefix=f"UniAVGen/{prefix}"))
    g[first_id + 5] = ("MaskToImage", dict(mask=(sampler, 2)))
    g[first_id + 6] = ("CreateVideo", dict(images=(first_id + 5, 0), fps=16.0))
    g[first_id + 7] = ("SaveVideo", dict(video=(first_id + 6, 0), filename_prefix=f"UniAVGen/{prefix}_face_mask",
                                         format="auto", codec="auto"))


def avg(prefix="avg"):
    g = {}
    _models(g)
    g[7] = ("LoadImage", dict(image="uniavgen_face.png"))
    _reference(g, 8, (7, 0))
    g[9] = ("UniAVGenSpeechText", dict(model=(1, 0), text=TEXT, language="auto", reference_text=""))
    g[10] = ("UniAVGenSampler", dict(model=(1, 0), speech=(9, 0), positive=(5, 0), negative=(6, 0), reference=(8, 0),
                                     **SAMPLER))
    _outputs(g, 10, 11, prefix)
    return g


def _with_audio(prefix, file, role, sampler_input, **speech):
    """The AVG graph plus an encoded audio file on the sampler's `sampler_input`."""
    g = avg(prefix)
    g[20] = ("LoadAudio", dict(audio=file))
    g[21] = ("UniAVGenAudioEncode", dict(audio=(20, 0), role=role))
    g[9][1].update(speech)
    g[10][1][sampler_input] = (21, 0)
    return g


def ravg():
    return _with_audio("ravg", "uniavgen_voice.wav", "reference voice (RAVG)", "voice",
                       reference_text="This is the transcript of the reference recording.")


def a2v():
    return _with_audio("a2v", "uniavgen_speech.wav", "driving audio (A2V)", "driving_audio", text="")


def v2a():
    g = {}
    _models(g)
    g[7] = ("LoadVideo", dict(file="uniavgen_clip.mp4"))
    g[8] = ("GetVideoComponents", dict(video=(7, 0)))
    g[9] = ("UniAVGenSpeechText", dict(model=(1, 0), text=TEXT, language="auto", reference_text=""))
    g[20] = ("UniAVGenVideoEncode", dict(images=(8, 0), fps=(8, 2), vae=(3, 0),
                                         resolution="official (short side 736)", short_side=480))
    g[10] = ("UniAVGenSampler", dict(model=(1, 0), speech=(9, 0), positive=(5, 0), negative=(6, 0),
                                     driving_video=(20, 0), **SAMPLER))
    _outputs(g, 10, 11, "v2a")
    return g


def long_form():
    """Two clips chained: clip 1's last frame is clip 2's face, clip 1's voice is clip 2's voice."""
    g = avg("long_form_clip1")
    g[20] = ("UniAVGenLastFrame", dict(images=(11, 0)))
    _reference(g, 21, (20, 0))
    g[22] = ("UniAVGenAudioEncode", dict(audio=(12, 0), role="reference voice (RAVG)"))
    g[23] = ("UniAVGenSpeechText", dict(model=(1, 0), text="And tomorrow we are going to the sea, all of us together.",
                                        language="auto", reference_text=TEXT))
    g[24] = ("UniAVGenSampler", dict(model=(1, 0), speech=(23, 0), positive=(5, 0), negative=(6, 0), reference=(21, 0),
                                     voice=(22, 0), **dict(SAMPLER, seed=2026)))
    g[25] = ("VAEDecode", dict(samples=(24, 0), vae=(3, 0)))
    g[26] = ("UniAVGenAudioDecode", dict(vocoder=(2, 0), mel=(24, 1)))
    g[27] = ("UniAVGenJoinClips", dict(images_1=(11, 0), audio_1=(12, 0), images_2=(25, 0), audio_2=(26, 0)))
    g[30] = ("CreateVideo", dict(images=(27, 0), fps=16.0, audio=(27, 1)))
    g[31] = ("SaveVideo", dict(video=(30, 0), filename_prefix="UniAVGen/long_form", format="auto", codec="auto"))
    return g


MINI_FACE_SEED = 9_004_242          # the demo's face (make demo): no training clip of UniAVGen-mini uses it
MINI_TEXT = "hello there, this small face talks on your computer."


def mini_demo():
    """UniAVGen-mini, shipped with the pack, with its weight-free codec, captions and vocoder: no download."""
    g = {}
    g[1] = ("UniAVGenModelLoader", dict(model="UniAVGen-mini.safetensors", weight_dtype="auto", attention="auto",
                                        block_swap=0, compile=False))
    g[2] = ("UniAVGenVocoderLoader", dict(vocoder="griffin-lim (weight-free)", precision="fp32"))
    g[3] = ("UniAVGenVideoCodecLoader", dict(codec="UniAVGen-mini-video-codec.safetensors"))
    g[4] = ("UniAVGenSyntheticFace", dict(seed=MINI_FACE_SEED, size=128))
    g[5] = ("UniAVGenCaptionEncode", dict(model=(1, 0), text=(4, 1)))
    g[6] = ("UniAVGenCaptionEncode", dict(model=(1, 0), text=""))
    g[7] = ("UniAVGenReferenceImage", dict(image=(4, 0), vae=(3, 0), resolution="short side", short_side=128,
                                           crop="none", aspect="keep"))
    g[8] = ("UniAVGenSpeechText", dict(model=(1, 0), text=MINI_TEXT, language="en", reference_text=""))
    g[9] = ("UniAVGenSampler", dict(model=(1, 0), speech=(8, 0), positive=(5, 0), negative=(6, 0), reference=(7, 0),
                                    **dict(SAMPLER, duration_seconds=3.0625, steps=16, audio_cfg=4.0, slg_layer=-1)))
    _video(g, 9, 10, "mini_demo")
    return g


WORKFLOWS = {
    "uniavgen_avg_joint_generation": avg,
    "uniavgen_ravg_voice_clone": ravg,
    "uniavgen_a2v_audio_driven": a2v,
    "uniavgen_v2a_dubbing": v2a,
    "uniavgen_long_form_chained": long_form,
    "uniavgen_mini_demo": mini_demo,
}
