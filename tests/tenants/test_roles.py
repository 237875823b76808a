"""Roles and the permission map (`tenants/roles.py`), and what the README says of them."""

from __future__ import annotations

import re
from pathlib import Path

from tenants.roles import ROLE_PERMISSIONS, Perm, Role, has_perm

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_roles_table() -> dict[str, set[str]]:
    """{role: its permissions} as the README's Roles table states them."""
    section = README.read_text().split("\n## Roles\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    roles = [cell.strip() for cell in lines[0].strip("|").split("|")][1:-1]
    granted: dict[str, set[str]] = {role: set() for role in roles}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        perm = re.fullmatch(r"`(\w+)`", cells[0]).group(1)
        for role, cell in zip(roles, cells[1:-1], strict=True):
            if cell == "yes":
                granted[role].add(perm)
    return granted


def test_readme_roles_table_matches_the_permission_map():
    assert _readme_roles_table() == {role: set(perms) for role, perms in ROLE_PERMISSIONS.items()}


def test_rule_sets_are_for_analysts_admins_and_owners_not_approvers():
    """What the README says of rule sets ("analyst, admin, owner, not approver")."""
    allowed = {role for role in Role.values if has_perm(role, Perm.EDIT_RULES)}
    assert allowed == {Role.ANALYST, Role.ADMIN, Role.OWNER}
    readme = README.read_text()
    assert "`/api/v1/rule-sets/`; analyst, admin, owner, not approver" in readme
    assert "analyst and above" not in readme and "approver and above" not in readme
