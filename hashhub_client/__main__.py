"""``python -m hashhub_client``: the same as the installed ``hashhub`` command."""

from __future__ import annotations

from hashhub_client.cli import main

raise SystemExit(main())
