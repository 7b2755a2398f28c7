"""multirec: multimodal recommendation on PyTorch.

Item content (text, images, audio, or anything a custom encoder reads) is encoded by
pluggable encoders, projected into one space, fused with LightFM collaborative factors and
scored by a sigmoid head  p(u, i) = σ(⟨h_u, h_i⟩ + b_u + b_i + b).
"""

__version__ = "0.1.0"
