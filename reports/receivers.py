from __future__ import annotations


def connect() -> None:
    """Connect the reports app to the lower apps' signals (from reports.apps)."""
    from lists import changes
    from reports import listings

    # A hash entered a list: a verified source may now list a reported hash (reports.listings).
    changes.entries_entered.connect(listings.entries_entered, dispatch_uid="reports.listings")
