"""``python -m xraykit``: the CLI (and what ``torchrun -m xraykit`` launches)."""

from .cli import main

main()
