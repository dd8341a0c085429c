"""bench.soak: its pieces (RSS, the event stream) and a short soak of a launched tiny server (slow)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from bench import soak


def test_rss_of_this_process_is_read_from_proc():
    assert 10 < soak.rss_mib(os.getpid()) < 100_000
    with pytest.raises(FileNotFoundError):
        soak.rss_mib(2**30)  # no such process


def test_final_output_reads_complete_and_raises_on_error():
    stream = 'event: generating\ndata: ["par"]\n\nevent: complete\ndata: ["partial answer", 3]\n\n'
    assert soak.final_output("generate", stream) == ["partial answer", 3]
    with pytest.raises(RuntimeError, match="/route answered an error: Type a prompt"):
        soak.final_output("route", 'event: error\ndata: "Type a prompt"\n\n')
    with pytest.raises(RuntimeError, match="/route ended without a result"):
        soak.final_output("route", "event: heartbeat\ndata: null\n\n")


def test_bad_warm_up_is_refused():
    with pytest.raises(SystemExit):
        soak.main(["--requests", "10", "--warm-up", "20"])


@pytest.mark.slow
def test_a_launched_server_stops_growing(tmp_path, capsys):
    """Each session held its figures (~1 MiB per route + generate pair on the tiny model, 51 MiB over 50 pairs).

    Sessions are now small and at most 64 are kept. The soak drives the page's own events, one fresh session per
    route + generate pair, so the capacity is reached after 64 pairs: 30 more pairs after 70 warm-up pairs may
    add only a few MiB.
    """
    out = tmp_path / "soak.json"
    server = [sys.executable, "-m", "tests.soak_server", str(tmp_path / "world")]
    argv = ["--requests", "100", "--every", "10", "--warm-up", "70", "--concurrency", "4", "--json", str(out)]
    assert soak.main([*argv, "--server", *server]) == 0
    result = json.loads(out.read_text())
    curve = {int(i): rss for i, rss in result["curve"].items()}
    assert sorted(curve) == list(range(0, 101, 10))
    assert result["growth_after_warm_up"] < 12, capsys.readouterr().out
    (row,) = result["concurrency"]
    assert row["clients"] == 4 and row["mismatches"] == 0 and row["failures"] == [], row
    assert "growth after 70 warm-up pairs" in capsys.readouterr().out
