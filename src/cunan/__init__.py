"""CunAn (村安): self-hosted face-registry comparison for villages and residential communities."""

__version__ = "0.1.0"
