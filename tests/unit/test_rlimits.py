"""The rlimit names are kept once: spec/protocol.yml's ResourceLimits for Python,
src/common/rlimit_table.h for the C helpers, in the same order (the wshd wire index)."""

from __future__ import annotations

import re

from warden.config import RLIMIT_NAMES, ROOT
from warden.container.linux.wshd import RLIMIT_INDEX
from warden.protocol.catalogue import catalogue

TABLE = ROOT / "src" / "common" / "rlimit_table.h"


def c_table() -> list[tuple[str, str]]:
    """(NAME, name) of each X(...) row of WARDEN_RLIMITS, in order."""
    rows = re.findall(r"^\s*X\((\w+), (\w+), [^)]+\)", TABLE.read_text(), re.M)
    assert rows, f"no X(...) rows in {TABLE}"
    return rows


def test_c_table_matches_the_spec():
    spec = list(catalogue().structs["ResourceLimits"])
    rows = c_table()
    assert [name for _, name in rows] == spec
    assert all(upper == name.upper() for upper, name in rows)


def test_python_reads_the_spec():
    spec = tuple(catalogue().structs["ResourceLimits"])
    assert spec == RLIMIT_NAMES
    assert {name: index for index, name in enumerate(spec)} == RLIMIT_INDEX
    assert RLIMIT_INDEX["as"] == 0 and RLIMIT_INDEX["stack"] == 14


def test_no_other_copy_of_the_list():
    """A second literal list of the names (three in a row, quoted) would drift."""
    copy = re.compile(r'"as",\s*"core",\s*"cpu"|\{ "as", RLIMIT_AS|\{ "AS", RLIMIT_AS', re.I)
    found = [str(p.relative_to(ROOT)) for p in [*ROOT.glob("warden/**/*.py"), *ROOT.glob("src/**/*.[ch]")]
             if copy.search(p.read_text(errors="replace"))]
    assert found == []
