"""``python -m kyoukai``: the ``kyoukai`` command (:mod:`kyoukai.cli`)."""

from __future__ import annotations

import sys

from kyoukai.cli import main

sys.exit(main())
