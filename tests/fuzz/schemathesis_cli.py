"""The schemathesis CLI, with one CPython 3.11 interpreter bug worked around.

CPython 3.11.7's AST constructor can fail its own recursion check
(``SystemError: AST constructor recursion depth mismatch``) when Hypothesis parses a
lambda's source only to *describe* a filtered strategy in its repr. The description is
cosmetic; the crash aborts the whole run. So a ``SystemError`` there gives the same
"unknown lambda" description Hypothesis gives whenever it cannot read a source. Nothing
about what is generated or checked changes.

Run as ``python -m tests.fuzz.schemathesis_cli run URL ...`` (the arguments of ``st``).
"""

from __future__ import annotations

import sys

from hypothesis.internal import lambda_sources

_describe = lambda_sources._lambda_description


def _lambda_description(f, *args, **kwargs):  # type: ignore[no-untyped-def]
    try:
        return _describe(f, *args, **kwargs)
    except SystemError:
        return "lambda: <unknown>"


lambda_sources._lambda_description = _lambda_description

if __name__ == "__main__":
    from schemathesis.cli import schemathesis

    sys.argv[0] = "st"
    sys.exit(schemathesis())
