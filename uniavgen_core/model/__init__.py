"""The UniAVGen network: configuration, injectable layers, attention, rotary tables, the
cross-modal interactions, the dual-branch DiT and its weight streaming. Nothing here knows about
sampling, audio files or checkpoints on disk."""
from .conditioning import Condition, ConditionBatch, Switches
from .config import UniAVGenConfig
from .dit import ModelOutput, UniAVGenModel

__all__ = ["Condition", "ConditionBatch", "Switches", "UniAVGenConfig", "ModelOutput", "UniAVGenModel"]
