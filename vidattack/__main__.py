"""`python -m vidattack` runs the command line."""

from vidattack.cli import main

main()
