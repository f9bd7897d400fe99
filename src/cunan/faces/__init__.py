"""Face engine: images in; faces, quality and embeddings out (stateless, no storage)."""
