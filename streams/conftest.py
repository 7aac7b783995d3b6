"""pytest collects this package's doctests (--doctest-modules; not part of the package's API).

When the core is compiled (setup.py, mypyc), ``streams.core.engine`` imports from
``engine.cpython-*.so`` while pytest collects ``engine.py`` (so do ``streams.contracts``,
``streams.replay`` and ``streams.schedule``); without this setting pytest refuses the pair
("import file mismatch"). It sits at the package's top so that it is set before the first
compiled module is collected. Compiled modules carry no docstrings, so their doctests are
then run from the Python sources by tests/core/test_compiled.py instead.
"""

from __future__ import annotations

import os

os.environ.setdefault("PY_IGNORE_IMPORTMISMATCH", "1")
