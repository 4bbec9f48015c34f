"""Entry point of ``python -m tasks``."""

from tasks.cli import main

main()
