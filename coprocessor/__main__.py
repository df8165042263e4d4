"""`python -m coprocessor` runs the CLI."""

from .cli import main

main()
