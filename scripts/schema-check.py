#!/usr/bin/env python3
"""Holds schema.graphql to the last release: no client-visible break unless
CHANGELOG.md names it, and nothing removed that was not deprecated first.

The last release is the first `## [X.Y.Z]` heading of the changelog; its
schema is kept in docs/releases/X.Y.Z.graphql, so the check needs no git
tag and works on any clone. When a tag `vX.Y.Z` exists too, its
schema.graphql must be the kept one.

Compared with graphql-core's find_breaking_changes (the reference
implementation's own diff). A breaking change passes only when the
`### Breaking` list under `## [Unreleased]` names its schema coordinate in
backticks: `Type.field`, `Type.field(arg:)`, `Enum.VALUE`, `Type`. A
removed field, argument, input field or enum value must also have been
deprecated in the release, so clients had a release's warning. A
deprecation added since the release must be named under `### Deprecated`.
Dangerous changes (an enum value or optional argument added, a default
changed) are printed, not refused.

Usage: scripts/schema-check.py [--schema schema.graphql]
           [--changelog CHANGELOG.md] [--releases docs/releases]
Exit 0 when compatible, 1 otherwise.
"""

import argparse
import re
import subprocess
import sys
from pathlib import Path

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    build_schema,
    find_breaking_changes,
    find_dangerous_changes,
)
from graphql.utilities.find_breaking_changes import BreakingChangeType

ROOT = Path(__file__).resolve().parent.parent
RELEASE = re.compile(r"^## \[(\d+\.\d+\.\d+)\]", re.MULTILINE)
COORDINATE = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*(?:\([A-Za-z_][A-Za-z0-9_]*:\))?)?)`")

# The description of each kind of break, as graphql-core words it, and the
# schema coordinate it concerns.
PATTERNS = [
    (re.compile(r"^(\w+)\.(\w+) arg (\w+) "), lambda m: f"{m[1]}.{m[2]}({m[3]}:)"),
    (re.compile(r"^A required arg (\w+) on (\w+)\.(\w+) was added"), lambda m: f"{m[2]}.{m[3]}({m[1]}:)"),
    (re.compile(r"^A required field (\w+) on input type (\w+) was added"), lambda m: f"{m[2]}.{m[1]}"),
    (re.compile(r"^(\w+) was removed from enum type (\w+)"), lambda m: f"{m[2]}.{m[1]}"),
    (re.compile(r"^(\w+) was removed from union type (\w+)"), lambda m: m[2]),
    (re.compile(r"^(\w+) no longer implements interface (\w+)"), lambda m: m[1]),
    (re.compile(r"^A required arg (\w+) on directive (\w+) was added"), lambda m: f"@{m[2]}"),
    (re.compile(r"^(\w+)\.(\w+) "), lambda m: f"{m[1]}.{m[2]}"),
    (re.compile(r"^(?:Standard scalar )?(\w+) "), lambda m: m[1]),
]

REMOVALS = {
    BreakingChangeType.FIELD_REMOVED,
    BreakingChangeType.ARG_REMOVED,
    BreakingChangeType.VALUE_REMOVED_FROM_ENUM,
}


def coordinate(description: str) -> str:
    for pattern, name in PATTERNS:
        match = pattern.match(description)
        if match:
            return name(match)
    return description


def section(text: str, heading: str) -> str:
    """The body of the `## [heading]` section, up to the next `## `."""
    start = text.find(f"## [{heading}]")
    if start < 0:
        return ""
    body = text[start:].split("\n", 1)[1] if "\n" in text[start:] else ""
    end = body.find("\n## ")
    return body if end < 0 else body[:end]


def named(unreleased: str, kind: str) -> set[str]:
    """Coordinates in backticks under `### kind` of the Unreleased section."""
    start = unreleased.find(f"### {kind}")
    if start < 0:
        return set()
    body = unreleased[start:].split("\n", 1)[1] if "\n" in unreleased[start:] else ""
    end = body.find("\n### ")
    body = body if end < 0 else body[:end]
    return set(COORDINATE.findall(body))


def deprecated(schema) -> dict[str, str]:
    """Every deprecated coordinate of a schema, with its reason."""
    found = {}
    for name, ty in schema.type_map.items():
        if name.startswith("__"):
            continue
        if isinstance(ty, GraphQLEnumType):
            for value_name, value in ty.values.items():
                if value.deprecation_reason is not None:
                    found[f"{name}.{value_name}"] = value.deprecation_reason
        if isinstance(ty, (GraphQLObjectType, GraphQLInterfaceType, GraphQLInputObjectType)):
            for field_name, field in ty.fields.items():
                if field.deprecation_reason is not None:
                    found[f"{name}.{field_name}"] = field.deprecation_reason
                for arg_name, arg in getattr(field, "args", {}).items():
                    if arg.deprecation_reason is not None:
                        found[f"{name}.{field_name}({arg_name}:)"] = arg.deprecation_reason
    return found


def released_schema(version: str, releases: Path) -> str:
    kept = releases / f"{version}.graphql"
    if not kept.exists():
        sys.exit(f"schema check: the changelog's last release is {version}, but {kept} is missing")
    text = kept.read_text()
    tag = f"v{version}"
    tagged = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{tag}:schema.graphql"],
        capture_output=True,
        text=True,
    )
    if tagged.returncode == 0 and tagged.stdout != text:
        sys.exit(f"schema check: tag {tag}'s schema.graphql differs from {kept}; they must agree")
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schema", type=Path, default=ROOT / "schema.graphql")
    parser.add_argument("--changelog", type=Path, default=ROOT / "CHANGELOG.md")
    parser.add_argument("--releases", type=Path, default=ROOT / "docs" / "releases")
    args = parser.parse_args()

    changelog = args.changelog.read_text()
    releases = RELEASE.findall(changelog)
    if not releases:
        sys.exit("schema check: CHANGELOG.md names no release (`## [X.Y.Z] - date`)")
    version = releases[0]
    old = build_schema(released_schema(version, args.releases))
    new = build_schema(args.schema.read_text())
    unreleased = section(changelog, "Unreleased")
    allowed = named(unreleased, "Breaking")
    announced = named(unreleased, "Deprecated")
    was_deprecated = deprecated(old)

    failures = []
    for change in find_breaking_changes(old, new):
        where = coordinate(change.description)
        if where not in allowed:
            failures.append(
                f"{change.description} Name `{where}` under `### Breaking` in "
                f"CHANGELOG.md's Unreleased section, or keep it (deprecate it instead)."
            )
        elif change.type in REMOVALS and where not in was_deprecated:
            failures.append(
                f"{change.description} `{where}` was not deprecated in {version}: "
                f"deprecate it in a release before removing it."
            )
        else:
            print(f"breaking, named in the changelog: {change.description}")
    for where in sorted(set(deprecated(new)) - set(was_deprecated)):
        if where not in announced:
            failures.append(
                f"`{where}` is newly deprecated: name it under `### Deprecated` in "
                f"CHANGELOG.md's Unreleased section."
            )
    for change in find_dangerous_changes(old, new):
        print(f"note (a client may need to handle it): {change.description}")

    if failures:
        print(f"schema.graphql against release {version}: {len(failures)} problem(s)")
        for failure in failures:
            print(f"  - {failure}")
        return 1
    print(f"schema.graphql is compatible with release {version} (or its breaks are in the changelog)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
