"""The small model at inference, without ComfyUI: its pipeline (pipeline.py: pictures, speech and captions
in, clips out, through the front-end entry and the sampler like the nodes), the weight-free codecs it
decodes with (codecs/: patch-PCA video codec, Griffin-Lim vocoder, hashed captions) and the clip writer
(mp4.py). The demo, the evaluation and the training data use them."""
