"""The HMA-compatible facade: Meta's Hasher-Matcher-Actioner REST routes over HashHub (issue 20).

Built from HMA's route code at :data:`hma.selectors.HMA_COMMIT`; see README.md,
"HMA-compatible API".
"""
