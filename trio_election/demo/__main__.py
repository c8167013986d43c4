"""`python -m trio_election.demo`."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
