"""``python -m slaws``: the same as the ``slaws`` command."""

import sys

from slaws.cli import main

sys.exit(main())
