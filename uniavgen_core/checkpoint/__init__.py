"""Weights on disk: reading official folders and single files with a readable report, and
converting them to one self-contained bf16 or scaled-fp8 file."""
