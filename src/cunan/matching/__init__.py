"""Matching probe faces against the gallery: open-set decisions (known resident or stranger)."""
