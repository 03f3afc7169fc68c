"""What the layout promises: no two modules import each other, and tasks keep their names.

Services queue Celery tasks by name (``app.send_task``) so that a service never imports the tasks
module that imports it; the names are also what queued tasks and beat's database rows carry, so
they never change.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("hub", "lists", "sharing", "matching", "reports")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Each first-party module (migrations aside) -> the first-party modules it imports, at
    module level or inside a function."""
    paths = {
        _module_name(path): path
        for app_name in APPS
        for path in (ROOT / app_name).rglob("*.py")
        if "migrations" not in path.parts
    }
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            found.update(t for t in targets if t in paths and t != name)
        graph[name] = found
    return graph


def circles(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted(
        (a, b) for a, imported in graph.items() for b in imported if a < b and a in graph[b]
    )


def test_no_two_modules_import_each_other() -> None:
    graph = import_graph()
    assert "lists.sources.runs" in graph["lists.tasks"]  # the walk sees imports at all
    assert circles(graph) == []


def test_the_tasks_services_send_by_name_exist_under_their_old_names() -> None:
    # Imported here: this file also runs as a script (python tests/test_layout.py), without Django.
    import lists.tasks
    import matching.tasks
    from hub.celery import app
    from lists.importing import IMPORT_JOB_TASK
    from lists.sources.runs import RUN_TASK
    from matching.webhooks import DELIVER_TASK

    assert (RUN_TASK, IMPORT_JOB_TASK, DELIVER_TASK) == (
        "lists.source_run",
        "lists.run_import_job",
        "matching.deliver_webhook",
    )
    assert lists.tasks.source_run.name == RUN_TASK
    assert lists.tasks.run_import_job.name == IMPORT_JOB_TASK
    assert matching.tasks.deliver_webhook.name == DELIVER_TASK
    assert {RUN_TASK, IMPORT_JOB_TASK, DELIVER_TASK} <= set(app.tasks)


if __name__ == "__main__":
    print(circles(import_graph()) or "no two modules import each other")


def test_only_lists_names_the_entry_tables() -> None:
    """The change sequence, the entries and the merged set are read and written through
    lists.changes: no other app hand-writes a statement against their tables."""
    tables = ("lists_entry", "lists_hash ", "lists_hash\n", "lists_changecounter")
    offenders = [
        str(path.relative_to(ROOT))
        for app_name in ("hub", "sharing", "matching", "reports")
        for path in (ROOT / app_name).rglob("*.py")
        if "migrations" not in path.parts and any(t in path.read_text() for t in tables)
    ]
    assert offenders == []
