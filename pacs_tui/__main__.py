"""``python -m pacs_tui`` runs the command line."""

import sys

from pacs_tui.cli import main

sys.exit(main())
