"""`python -m initlab` is the `initlab` command line."""
import sys

from .cli import main

sys.exit(main())
