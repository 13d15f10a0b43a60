"""auxformer.runtime: torch-free feature contracts, feature extraction and batched inference.

Importing this package must never import torch: it is what other applications embed.
"""

from .bounds import MemoryBudget
from .contracts import AUDIO_DIM, ClipFeatures, FeatureError, Status
from .manifest import Manifest, ManifestError
from .prediction import Prediction
from .session import Session

__all__ = [
    "AUDIO_DIM",
    "ClipFeatures",
    "FeatureError",
    "Manifest",
    "ManifestError",
    "MemoryBudget",
    "Prediction",
    "Session",
    "Status",
]
