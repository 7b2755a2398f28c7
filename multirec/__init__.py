"""multirec: multimodal recommendation on PyTorch (content encoders + LightFM + sigmoid head).

    >>> from multirec import InteractionData, MultimodalRecommender
"""

__version__ = "0.2.0"

from .data import InteractionData  # noqa: E402
from .model import MultimodalRecommender  # noqa: E402

__all__ = ["InteractionData", "MultimodalRecommender", "__version__"]
