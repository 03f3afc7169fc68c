"""Every action the code can write renders on the audit pages, whatever its metadata holds.

The action names are not listed by hand: they are read out of the source tree, so a new audit
call is covered the day it is written. Metadata keys that shadow dict methods (``items``,
``keys``, ...) once broke the page, because Django's template lookup finds a key before a method.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.test import Client

from hub.audit import Actor, audit
from hub.models import Organization, User
from hub.templatetags.audit import MAX_SHOWN, MetadataItem, metadata_items

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
_Function = ast.FunctionDef | ast.AsyncFunctionDef
SCANNED_APPS = ("hub", "lists", "sharing", "matching")

# --- collecting the action names from the source tree ----------------------------------------


@dataclass(frozen=True)
class _Helper:
    """A function that ends in an audit call, and where its callers pass the action."""

    keyword: str
    position: int | None


@dataclass
class _Module:
    name: str
    path: Path
    tree: ast.Module
    # Local name -> (module, symbol) for ``from x import y``; symbol "" when y is a module.
    imports: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class AuditActionScan:
    actions: set[str] = field(default_factory=set)
    # Call sites whose action the scan could not read, as "path:line": they must not exist.
    unresolved: list[str] = field(default_factory=list)


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or path.is_dir()


def _modules() -> Iterator[_Module]:
    for app in SCANNED_APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            relative = path.relative_to(ROOT).with_suffix("")
            parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
            module = _Module(".".join(parts), path, ast.parse(path.read_text(), str(path)))
            for node in ast.walk(module.tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    for alias in node.names:
                        submodule = f"{node.module}.{alias.name}"
                        target = (
                            (submodule, "") if _is_module(submodule) else (node.module, alias.name)
                        )
                        module.imports[alias.asname or alias.name] = target
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        module.imports[alias.asname or alias.name] = (alias.name, "")
            yield module


def _parameters(function: _Function) -> list[str]:
    arguments = function.args
    return [a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)]


def _callee(call: ast.Call, module: _Module) -> tuple[str, str] | None:
    """The (module, function) a call refers to, as far as the names in its module tell."""
    if isinstance(call.func, ast.Name):
        name = call.func.id
        imported = module.imports.get(name)
        return imported if imported and imported[1] else (module.name, name)
    if isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name):
        imported = module.imports.get(call.func.value.id)
        if imported and not imported[1]:
            return (imported[0], call.func.attr)
    return None


def _action_argument(call: ast.Call, helper: _Helper) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == helper.keyword:
            return keyword.value
    if helper.position is not None and helper.position < len(call.args):
        return call.args[helper.position]
    return None


def _enclosing(tree: ast.Module) -> dict[ast.AST, list[_Function]]:
    """For every node, the functions around it, innermost last."""
    chains: dict[ast.AST, list[_Function]] = {}

    def visit(node: ast.AST, chain: list[_Function]) -> None:
        chains[node] = chain
        inner = [*chain, node] if isinstance(node, _Function) else chain
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, [])
    return chains


def _constants(node: ast.expr, scopes: list[ast.AST]) -> set[str] | None:
    """The strings an expression can take, or None when it is not a form the scan can read."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        body, orelse = _constants(node.body, scopes), _constants(node.orelse, scopes)
        return None if body is None or orelse is None else body | orelse
    if isinstance(node, ast.Name):
        return _name_constants(node.id, scopes)
    return None


def _name_constants(name: str, scopes: list[ast.AST]) -> set[str] | None:
    # Innermost scope first: an assignment (``action = "a" if x else "b"``) or a loop over a
    # literal table (``for signal, action in _RECEIVERS``).
    for scope in reversed(scopes):
        found: set[str] = set()
        readable = True
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if node.value is not None and any(
                    isinstance(t, ast.Name) and t.id == name for t in targets
                ):
                    values = _constants(node.value, scopes)
                    readable = readable and values is not None
                    found |= values or set()
            elif isinstance(node, ast.For) and isinstance(node.target, ast.Tuple):
                names = [t.id if isinstance(t, ast.Name) else "" for t in node.target.elts]
                if name in names:
                    values = _table_column(node.iter, names.index(name), scopes)
                    readable = readable and values is not None
                    found |= values or set()
        if found or not readable:
            return found if readable else None
    return None


def _table_column(node: ast.expr, index: int, scopes: list[ast.AST]) -> set[str] | None:
    if isinstance(node, ast.Name):
        for scope in reversed(scopes):
            for each in ast.walk(scope):
                if isinstance(each, ast.Assign | ast.AnnAssign) and each.value is not None:
                    targets = each.targets if isinstance(each, ast.Assign) else [each.target]
                    if any(isinstance(t, ast.Name) and t.id == node.id for t in targets):
                        return _table_column(each.value, index, scopes)
        return None
    if isinstance(node, ast.List | ast.Tuple):
        found: set[str] = set()
        for row in node.elts:
            if not isinstance(row, ast.Tuple) or index >= len(row.elts):
                return None
            values = _constants(row.elts[index], scopes)
            if values is None:
                return None
            found |= values
        return found
    return None


def collect_audit_actions() -> AuditActionScan:
    """Read every action name the code passes to ``hub.audit.audit``, directly or via helpers.

    A helper is any function that hands one of its own parameters on as the action of an audit
    call (or of another helper's): ``audit_list``, ``audit_source``, ``_record``, ... Its
    callers' arguments are read instead. Anything the scan cannot read is reported, not skipped.
    """
    modules = list(_modules())
    chains = {module.name: _enclosing(module.tree) for module in modules}
    helpers: dict[tuple[str, str], _Helper] = {("hub.audit", "audit"): _Helper("action", None)}

    called: set[tuple[str, str]] = set()

    def helper_calls(module: _Module) -> Iterator[tuple[ast.Call, _Helper]]:
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Call):
                callee = _callee(node, module)
                if callee in helpers:
                    called.add(callee)
                    yield node, helpers[callee]

    def forwarded_parameter(node: ast.expr, chain: list[_Function]) -> tuple[_Function, str] | None:
        if isinstance(node, ast.Name):
            for function in reversed(chain):
                if node.id in _parameters(function):
                    return function, node.id
        return None

    # Helpers of helpers: repeat until no new one turns up.
    changed = True
    while changed:
        changed = False
        for module in modules:
            for call, helper in helper_calls(module):
                argument = _action_argument(call, helper)
                forwarded = argument and forwarded_parameter(argument, chains[module.name][call])
                if not forwarded:
                    continue
                function, parameter = forwarded
                key = (module.name, function.name)
                if key not in helpers:
                    positional = [a.arg for a in (*function.args.posonlyargs, *function.args.args)]
                    position = positional.index(parameter) if parameter in positional else None
                    helpers[key] = _Helper(parameter, position)
                    changed = True

    scan = AuditActionScan()
    for module in modules:
        for call, helper in helper_calls(module):
            where = f"{module.path.relative_to(ROOT)}:{call.lineno}"
            chain = chains[module.name][call]
            argument = _action_argument(call, helper)
            if argument is None:
                scan.unresolved.append(where)
                continue
            forwarded = forwarded_parameter(argument, chain)
            if forwarded and (module.name, forwarded[0].name) in helpers:
                continue  # A helper handing its parameter on: its callers are read instead.
            values = _constants(argument, [module.tree, *chain])
            if values is None:
                scan.unresolved.append(where)
            else:
                scan.actions |= values
    # A helper whose callers the scan cannot see (a method, say) would hide its actions.
    scan.unresolved += [
        f"{name}.{function} is never called" for name, function in helpers.keys() - called
    ]
    return scan


SCAN = collect_audit_actions()

# --- pages -------------------------------------------------------------------------------------

# Keys that shadow dict methods, with every kind of JSON value.
SHADOWING_METADATA: dict[str, Any] = {
    "items": 314159,
    "keys": "shadowed keys",
    "values": ["first value", "second value"],
    "get": {"nested": {"deeper": "deep value"}},
    "pop": 271828,
    "update": "update value",
    "copy": None,
    "clear": True,
}
# What the page shows for each of them.
SHADOWING_SHOWN = [
    "items: 314159",
    "keys: shadowed keys",
    "values: [first value, second value]",
    "get: {nested: {deeper: deep value}}",
    "pop: 271828",
    "update: update value",
    "copy: null",
    "clear: true",
]
DECOY_ACTION = "zz.decoy"
EVENT_DAY = date(2026, 3, 2)
DECOY_DAY = date(2026, 2, 20)


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, 0, tzinfo=UTC)


@pytest.fixture
def decoy(org_a: Organization) -> None:
    """An event no filter below may let through: another action, actor and day."""
    with time_machine.travel(_at(DECOY_DAY), tick=False):
        audit(
            actor=Actor(system="decoy process"),
            action=DECOY_ACTION,
            organization=org_a,
            metadata={"decoy": "decoy value"},
        )


def _record(org: Organization, user: User, action: str, metadata: dict[str, Any]) -> None:
    audit(
        actor=Actor(user=user, ip="203.0.113.7"),
        action=action,
        organization=org,
        target_type="thing",
        target_id="t-1",
        metadata=metadata,
    )


def _record_on_the_day(
    org: Organization, user: User, action: str, metadata: dict[str, Any]
) -> None:
    with time_machine.travel(_at(EVENT_DAY), tick=False):
        _record(org, user, action, metadata)


def test_the_scan_finds_the_audit_actions_the_code_writes() -> None:
    assert SCAN.unresolved == [], "audit calls whose action the scan cannot read"
    assert len(SCAN.actions) >= 60, sorted(SCAN.actions)
    assert {
        "export.read",
        "list.created",
        "organization.created",
        "organization.unapproved",  # one branch of a conditional expression
        "subscription.category_removed",  # a local variable handed to a positional helper
        "source.created",  # a helper with the action as a positional parameter
        "detection.dismissed",
        "webhook.secret_rotated",
        "account.mfa_reset",  # a table of signals in hub/account_audit.py
    } <= SCAN.actions
    assert all(action and len(action) <= 64 for action in SCAN.actions)


def test_an_export_read_event_with_an_items_count_renders_the_audit_page(
    alice: User, alice_client: Client, org_a: Organization
) -> None:
    # The original defect: the template's event.metadata.items found the int, not dict.items.
    _record(org_a, alice, "export.read", {"cursor": "", "items": 3, "next_cursor": "42"})
    page = alice_client.get("/o/org-a/audit/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "export.read" in body
    assert "items: 3" in body
    assert "next_cursor: 42" in body


@pytest.mark.parametrize("action", sorted(SCAN.actions))
def test_the_audit_page_renders_every_action_with_any_metadata(
    action: str, alice: User, alice_client: Client, org_a: Organization, decoy: None
) -> None:
    _record_on_the_day(org_a, alice, action, SHADOWING_METADATA)
    day = EVENT_DAY.isoformat()
    views = {
        "unfiltered": {},
        "by action": {"action": action},
        "by actor": {"actor": "ALICE@example"},
        "from the day": {"since": day},
        "until the day": {"until": day, "since": day},
        "every filter": {"action": action, "actor": "alice", "since": day, "until": day},
    }
    for name, query in views.items():
        for htmx in (False, True):
            headers = {"HX-Request": "true"} if htmx else {}
            response = alice_client.get("/o/org-a/audit/", query, headers=headers)
            assert response.status_code == 200, (name, htmx)
            body = response.content.decode()
            assert f"<code>{action}</code>" in body, (name, htmx)
            for shown in SHADOWING_SHOWN:
                assert shown in body, (name, htmx, shown)
            assert "203.0.113.7" in body
            # (The full page also offers every action as a suggestion: look at the rows.)
            decoy_shown = f"<code>{DECOY_ACTION}</code>" in body or "decoy value" in body
            assert decoy_shown == (name == "unfiltered"), (name, htmx)


def test_the_dashboard_shows_recent_events_of_any_action(
    alice: User, alice_client: Client, org_a: Organization
) -> None:
    # Written now, after the fixtures' own events, so these are the eight most recent.
    recent = sorted(SCAN.actions)[-8:]
    for action in recent:
        _record(org_a, alice, action, SHADOWING_METADATA)
    response = alice_client.get("/o/org-a/")
    assert response.status_code == 200
    body = response.content.decode()
    # In sentences (hub.activity), each with its action code as the title.
    assert all(f'title="{action}"' in body for action in recent)


def test_the_pager_keeps_every_filter(
    alice: User, alice_client: Client, org_a: Organization
) -> None:
    for _ in range(51):
        _record_on_the_day(org_a, alice, "export.read", {"items": 1})
    query = {"action": "export.", "actor": "alice", "since": "2026-03-02", "until": "2026-03-02"}
    body = alice_client.get("/o/org-a/audit/", query).content.decode()
    assert "Page 1 of 2" in body
    older = "?action=export.&amp;actor=alice&amp;since=2026-03-02&amp;until=2026-03-02&amp;page=2"
    assert f'href="{older}"' in body
    second = alice_client.get("/o/org-a/audit/", {**query, "page": "2"})
    assert second.status_code == 200
    assert "Page 2 of 2" in second.content.decode()


# --- the metadata filter -----------------------------------------------------------------------


def test_metadata_items_are_sorted_pairs_even_for_keys_that_shadow_dict_methods() -> None:
    assert metadata_items({"values": [1, 2], "items": 3, "keys": "k"}) == [
        MetadataItem("items", "3", ""),
        MetadataItem("keys", "k", ""),
        MetadataItem("values", "[1, 2]", ""),
    ]
    assert metadata_items({}) == []
    assert metadata_items(None) == []


def test_metadata_items_show_nested_json_readably() -> None:
    shown = metadata_items(
        {"fields": ["name", "url"], "change": {"to": "open", "from": None}, "ok": False, "r": 0.5}
    )
    assert [(item.key, item.value) for item in shown] == [
        ("change", "{from: null, to: open}"),
        ("fields", "[name, url]"),
        ("ok", "false"),
        ("r", "0.5"),
    ]


def test_metadata_items_cut_long_values_and_keep_more_in_the_title() -> None:
    (item,) = metadata_items({"note": "x" * 5000})
    assert len(item.value) == MAX_SHOWN
    assert item.value.endswith("…")
    assert item.title.startswith("x" * 1000)
    assert len(item.title) < 5000


def test_metadata_items_bound_deep_and_wide_values() -> None:
    deep: Any = "bottom"
    for _ in range(500):
        deep = {"down": deep}
    (item,) = metadata_items({"deep": deep})
    assert item.value == "{down: {down: {down: {down: {…}}}}}"
    (wide,) = metadata_items({"wide": list(range(1000))})
    assert wide.title.endswith("… 950 more]")


def test_metadata_that_is_not_an_object_is_one_item_without_a_key() -> None:
    assert metadata_items(["a", "b"]) == [MetadataItem("", "[a, b]", "")]
