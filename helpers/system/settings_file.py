"""Reading a settings file (a preset) safely: YAML as people write it, and bounded.

A preset is a few kilobytes of YAML, two levels deep. The reader takes numbers as people
write them (``1e-3`` is a float), refuses a key written twice, and cannot be made to take
memory or time without end: files over ``MAX_PRESET_BYTES``, values nested deeper than
``MAX_NESTING`` levels and aliases other than one merge key a mapping are refused, with the
file, line, column and key in one line.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from helpers.errors import ConfigError, shown
from helpers.paths import display_path

#: A preset is a few kilobytes, two levels deep (a block of settings, a list of image ids).
MAX_PRESET_BYTES = 256 * 1024
MAX_NESTING = 6
MAX_MERGES = 16  # merge keys in one file: a chain of merges copies each block again
_MERGE = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """YAML as people write numbers: ``1e-3`` is a float too (plain YAML 1.1 wants ``1.0e-3``
    and would read ``1e-3`` as text); and a key written twice in one mapping is an error
    (plain YAML keeps the last one and silently drops the first).

    It is also bounded: a value nested deeper than ``MAX_NESTING`` levels is refused (deep
    nesting would exhaust Python's recursion), and an alias (``*name``) may stand only as a
    merge key's value (``<<: *name``), once a mapping and at most ``MAX_MERGES`` times a file,
    so the document that is read can never be much larger than the file (nested aliases can
    stand for billions of values, and a long chain of merges for millions).
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[str | None] = []  # the keys down to the node being read
        self._merges = 0

    def _refuse(self, problem: str, mark: yaml.Mark) -> None:
        where = ".".join(key for key in self._path if key) or "the top level"
        raise yaml.composer.ComposerError(f"under {shown(where)}", None, problem, mark)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if not (isinstance(index, yaml.ScalarNode) and index.tag == _MERGE):
                self._refuse(f"found the alias *{shown(event.anchor)[1:-1]}: a preset may "
                             "reuse a block only as a merge key (<<: *name)", event.start_mark)
            self._merges += 1
            if self._merges > MAX_MERGES:
                self._refuse(f"found more than {MAX_MERGES} merge keys", event.start_mark)
        if len(self._path) >= MAX_NESTING:
            self._refuse(f"found values nested deeper than {MAX_NESTING} levels",
                         event.start_mark)
        self._path.append(index.value if isinstance(index, yaml.ScalarNode)
                          else f"[{index}]" if isinstance(index, int) else None)
        try:
            return super().compose_node(parent, index)
        finally:
            self._path.pop()

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict = {}
        merges = [key_node for key_node, _ in node.value if key_node.tag == _MERGE]
        if len(merges) > 1:  # each merge copies a whole block: they could multiply
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark,
                "found the merge key << twice", merges[1].start_mark)
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:  # `<<: *anchor`: YAML's own merge
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # PyYAML's own error says what is wrong with such a key
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"found the key {shown(key)} twice (also on line {seen[key] + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"), list("-+0123456789."))


def _one_line(error: yaml.YAMLError) -> str:
    """PyYAML's multi-line error as one line: where, what, and under which key."""
    if not isinstance(error, yaml.MarkedYAMLError):
        return str(error)[:300]
    mark = error.problem_mark or error.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    under = f" ({error.context})" if (error.context or "").startswith("under ") else ""
    return f"{where}{(error.problem or error.context or '')[:300]}{under}"


def read_settings(path: Path) -> dict:
    """The mapping of settings in the YAML file ``path``; :class:`ConfigError` names the file,
    and the line and column of a YAML problem, in one line."""
    size = path.stat().st_size
    if size > MAX_PRESET_BYTES:
        raise ConfigError(f"{display_path(path)} is {size:,} bytes: a preset is a few kilobytes "
                          f"of settings (at most {MAX_PRESET_BYTES:,} bytes)")
    try:
        values = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506
    except UnicodeDecodeError as error:
        raise ConfigError(f"{display_path(path)} is not UTF-8 text ({error})") from error
    except ValueError as error:  # e.g. a whole number of over 4300 digits, a 13th month
        raise ConfigError(f"{display_path(path)} holds a value that cannot be read: "
                          f"{str(error).split(';')[0][:200]}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{display_path(path)} is not valid YAML: {_one_line(error)}"
                          ) from error
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{display_path(path)} must be a mapping of settings, not "
                          f"{type(values).__name__}")
    return values
