"""Authenticator-app codes for tests that sign in over the wire (browser and e2e tests).

Those tests talk to a hub on the real clock, so they cannot move time to a fresh code: they wait.
"""

from __future__ import annotations

import time

import pyotp

# Leave the server at least this long to check a code before its 30-second window closes.
TOTP_SAFETY_SECONDS = 3


def totp_code_for_a_new_window(totp: pyotp.TOTP, *, after: int | None = None) -> tuple[str, int]:
    """A code the server will accept now, and the number of the 30-second window it belongs to.

    allauth accepts only the current window's code (no tolerance) and refuses a code it has
    already accepted within the same window. So: never use a code in the last few seconds of its
    window (it could expire in flight), and, when ``after`` is given, wait for a window later
    than that one. Waiting (at most one period) is the robust choice: signing in with a recovery
    code instead would never prove that TOTP login works, and reusing the activation code would
    pass only because allauth's activation happens not to mark its code as used, an internal
    detail that any release may change.
    """
    while True:
        now = time.time()
        window = int(now // totp.interval)
        left = totp.interval - now % totp.interval
        if left > TOTP_SAFETY_SECONDS and (after is None or window > after):
            return totp.at(now), window
        time.sleep(left + 0.05)
