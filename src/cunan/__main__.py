"""Entry point for ``python -m cunan``."""

from cunan.cli import main

main()
