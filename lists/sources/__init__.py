"""Upstream verified sources: registering them and running their imports.

- ``services``: create and update a source (its config checked: the adapter accepts it, it
  names environment variables starting with HASHHUB_SOURCE_ENV_PREFIX, never holds a
  credential, and its URL passes the address guard), its CSAM and SE lists; every change
  audited with old and new values.
- ``credentials``: what counts as a credential in a config, and how a page shows a config.
- ``stored_credentials``: credentials staff store on a source, encrypted (MultiFernet over
  HASHHUB_CREDENTIAL_KEYS), decrypted only for a run; key rotation.
- ``guard``: where a source may be fetched from, and where its credentials may go
  (hub.lib.netguard with HASHHUB_SOURCE_ALLOWED_HOSTS).
- ``schedules``: when beat fetches a source (its django-celery-beat PeriodicTask).
- ``runs``: an import run queued, executed (one page and its checkpoint per transaction) and
  finished; locks, stale runs, the Celery task's name.
- ``pages``: a page parsed and planned; ``apply``: a planned page written; ``helper``: the forked
  process that prepares pages one ahead of the run.
- ``uploads``: a staff-uploaded file for a feed source, parsed in memory; only its records are
  kept (lists.models.FeedUpload), never the file.
- ``adapters``: one module per upstream format (``base``: what they give the runner; ``http``:
  their HTTP client, which connects only to addresses the guard checked); ``errors``:
  ``SourceError``, which adapters raise to stop a run.
- ``views``, ``forms``, ``urls``: the staff pages under ``/staff/sources/``.

The Celery tasks are lists.tasks; they import this package, never the other way round.
"""
