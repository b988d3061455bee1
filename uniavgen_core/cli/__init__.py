"""The command-line tools, one module each: `python -m uniavgen_core.cli.<tool>`.

    demo       the shipped small model makes three clips (make demo)
    train      trains a small model from a TOML config (make train-demo)
    evaluate   lip sync of a small model on held-out synthetic clips (make evaluate-mini)
    report     the training curve of a checkpoint as a picture
    convert    a UniAVGen checkpoint to one bf16 or fp8 .safetensors
    golden     the golden-vector runner (make golden)
    samples    the example inputs the shipped workflows load
    preview    a contact sheet of synthetic clips
    levels     the output levels of media files

Each parses its arguments, prints and sets the exit status; the work itself is the library's. The tools
that take paths and numbers check them before any long work with the helpers in common.py and end a
user's mistake as one line (`error: ...`; the demo's `make demo: ...`) with exit status 2. Nothing
outside this package imports it (tests/test_structure.py).
"""
