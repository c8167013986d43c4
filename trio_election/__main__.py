"""`python -m trio_election`: the `trio-election` command."""

from __future__ import annotations

import sys

from ._cli import main

sys.exit(main())
