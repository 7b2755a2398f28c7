"""Data set loaders: MovieLens (official files) and a synthetic multimodal generator."""
