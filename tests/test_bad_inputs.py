"""bench.bad_inputs on the embedded model: every bad file and input of issue 16 gets a clear error (slow)."""

from __future__ import annotations

import pytest

from bench import bad_inputs

pytestmark = pytest.mark.slow


def test_every_bad_file_and_input_is_answered_clearly(capsys):
    status = bad_inputs.main([])
    table = capsys.readouterr().out
    assert "FAIL" not in table, table
    assert status == 0
    assert table.count("| ok |") == len(bad_inputs.ADAPTER_CASES) + 1 + 4 + 7 + 5
