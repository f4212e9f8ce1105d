"""s2t-live: Speech2Text (fairseq S2T) speech recognition in native PyTorch, with streaming.

The public names mirror the reference library's Speech2Text classes so that code written for it runs
with ``s2t_live`` in its place.
"""

from .configuration import Speech2TextConfig
from .errors import AudioError, DeviceError, ModelError, OutputError, S2TError
from .features import BatchFeature, Speech2TextFeatureExtractor
from .generation import GenerationConfig
from .model import Speech2TextForConditionalGeneration, Speech2TextModel
from .pipeline import pipeline
from .processor import Speech2TextProcessor
from .tokenizer import Speech2TextTokenizer

__version__ = "0.1.0"

__all__ = [
    "AudioError", "BatchFeature", "DeviceError", "GenerationConfig", "ModelError", "OutputError", "S2TError",
    "Speech2TextConfig", "Speech2TextFeatureExtractor", "Speech2TextForConditionalGeneration",
    "Speech2TextModel", "Speech2TextProcessor", "Speech2TextTokenizer", "pipeline",
]
