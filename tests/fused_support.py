"""Marks for tests of ``fused=True``, which needs torch >= 2.6 (the oldest torch
supported, 2.4, refuses it with a clear error; ``test_capturable.py`` checks that)."""

from __future__ import annotations

import pytest

from eve_scheduler.scheduler import fused_supported

needs_fused = pytest.mark.skipif(not fused_supported(), reason="fused=True needs torch >= 2.6")

# ``parametrize("fused", OPS_AND_FUSED)``: the separate tensor ops, and fused where it runs
OPS_AND_FUSED = [pytest.param(False, id="ops"), pytest.param(True, id="fused", marks=needs_fused)]
