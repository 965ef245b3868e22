"""The soak, small: bench/soak.py's run with 15 jobs of recorded human speech (and a few of
espeak-ng) through the native API and two facades under `diarist up`, one SIGKILL of the inference
worker while a job runs and one of the jobs worker. Nothing lost, stuck, completed twice, answered
5xx or left unannounced."""
from __future__ import annotations

import pytest

from bench import soak

pytestmark = pytest.mark.system


def test_a_small_soak_under_up_with_two_kills_loses_nothing(tmp_path):
    lines: list[str] = []
    config = soak.Config(jobs=15, rate=1.0, kills=("inference", "jobs"), broker_restarts=0, stop_share=0.2,
                         delete_share=0.15, drain_timeout=240.0, callback_timeout=60.0, seed=9, data_dir=tmp_path,
                         say=lines.append)
    report = soak.run(config)
    printed = soak.table(report) + "\n" + "\n".join(lines)
    print(printed)
    assert report["accepted"] == 15, printed
    assert report["all_ended"], printed
    assert report["lost"] == [] and report["stuck"] == [] and report["extra_jobs"] == [], printed
    assert report["completed_twice_history"] == [] and report["completed_twice_topic"] == [], printed
    assert report["server_errors"] == [], printed
    assert report["topic_read"] and report["callbacks_lost"] == [], printed
    assert report["callbacks_unsigned"] == 0 and report["callbacks_unknown_event"] == 0, printed
    assert len(report["chaos"]) == 2 and sum("restarted" in line for line in report["supervisor"]) == 2, printed
    assert report["up_exit_code"] == 0 and report["left_behind"] == [], printed
