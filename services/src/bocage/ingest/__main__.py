"""``python -m bocage.ingest SETTINGS.toml``: run ingest alone (see bocage.ingest.process)."""

from __future__ import annotations

import sys

from bocage.ingest.process import main

sys.exit(main())
