"""`python -m reconciler` runs the same CLI as the `reconciler` script."""

from reconciler.cli import main

main()
