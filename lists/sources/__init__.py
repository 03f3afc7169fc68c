"""Upstream verified sources: registering them and running their imports.

- ``services``: create and update a source (its config checked: the adapter accepts it, and it
  names environment variables, never holds a credential), its CSAM and SE lists.
- ``credentials``: what counts as a credential in a config, and how a page shows a config.
- ``schedules``: when beat fetches a source (its django-celery-beat PeriodicTask).
- ``runs``: an import run queued, executed (one page and its checkpoint per transaction) and
  finished; locks, stale runs, the Celery task's name.
- ``pages``: a page parsed and planned; ``apply``: a planned page written; ``helper``: the forked
  process that prepares pages one ahead of the run.
- ``uploads``: a staff-uploaded file for a feed source.
- ``adapters``: one module per upstream format (``base``: what they give the runner; ``http``:
  their HTTP client); ``errors``: ``SourceError``, which adapters raise to stop a run.
- ``views``, ``forms``, ``urls``: the staff pages under ``/staff/sources/``.

The Celery tasks are lists.tasks; they import this package, never the other way round.
"""
