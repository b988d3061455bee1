"""python -m uniavgen_core.demo: the demo's command line (cli/demo.py)."""
import sys

from ..cli.demo import main

sys.exit(main())
