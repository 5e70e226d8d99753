"""`python -m vidattack` runs the command line."""

from vidattack.startup import main

main()
