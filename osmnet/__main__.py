"""`python -m osmnet ...` is the `osmnet` command."""
import sys

from osmnet.cli import main

sys.exit(main())
