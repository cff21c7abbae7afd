"""Collection rules for the whole repository (tests/ and the doctests in conv1d_cli/)."""

from __future__ import annotations

import importlib.util

# conv1d_cli/dask.py needs the optional [dask] extra; without it its doctests
# cannot even be imported, so they are skipped like the tests that need it.
collect_ignore = [] if importlib.util.find_spec("dask") else ["conv1d_cli/dask.py"]
