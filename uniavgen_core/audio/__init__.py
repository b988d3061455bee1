"""The audio side around the model: the log-mel front end, reference and driving audio, the
speech-text tokenizer and the BigVGAN vocoder."""
