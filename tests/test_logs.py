"""DIARIST_LOG_FORMAT=json: one JSON object a line, with job_id wherever there is one (infra/logs.py)."""
from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config

import pytest

from diarist.infra.logs import JsonFormatter, job_context, logging_config

pytestmark = pytest.mark.unit


@pytest.fixture
def lines():
    """A logger writing through the formatter; the lines it wrote, parsed."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("diarist.test-logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False

    def written() -> list[dict]:
        text = out.getvalue()
        assert text.endswith("\n") and all(line.startswith("{") for line in text.splitlines())
        return [json.loads(line) for line in text.splitlines()]

    yield logger, written
    logger.removeHandler(handler)


def test_each_record_is_one_json_object_a_line(lines):
    logger, written = lines
    logger.warning("a %s with\nnewlines and \"quotes\" and ünïcode", "message")
    [entry] = written()
    assert entry["level"] == "WARNING" and entry["logger"] == "diarist.test-logs"
    assert entry["message"] == 'a message with\nnewlines and "quotes" and ünïcode'
    assert entry["time"].endswith("+00:00") and "job_id" not in entry


def test_the_job_id_comes_from_the_context_or_from_extra(lines):
    logger, written = lines
    with job_context("job-1"):
        logger.info("inside")
        with job_context("job-2"):
            logger.info("nested")
        logger.info("inside again", extra={"job_id": "job-3", "attempt": 2})
    logger.info("outside")
    entries = written()
    assert [e.get("job_id") for e in entries] == ["job-1", "job-2", "job-3", None]
    assert entries[2]["attempt"] == 2


def test_each_task_has_its_own_job(lines):
    logger, written = lines

    async def work(job_id: str) -> None:
        with job_context(job_id):
            await asyncio.sleep(0.01)
            logger.info("working")

    async def both() -> None:
        await asyncio.gather(work("a"), work("b"))

    asyncio.run(both())
    assert sorted(e["job_id"] for e in written()) == ["a", "b"]


def test_exceptions_are_inside_the_line(lines):
    logger, written = lines
    try:
        raise ValueError("broken")
    except ValueError:
        with job_context("job-9"):
            logger.exception("it failed")
    [entry] = written()
    assert entry["job_id"] == "job-9" and "ValueError: broken" in entry["exception"]
    assert entry["exception"].startswith("Traceback")


def test_values_json_cannot_write_are_written_as_text(lines):
    logger, written = lines
    logger.info("odd", extra={"thing": object(), "when": {1, 2}})
    [entry] = written()
    assert entry["thing"].startswith("<object") and isinstance(entry["when"], str)


def test_the_configuration_faust_is_given():
    assert logging_config("", "info") is None and logging_config("text", "info") is None
    with pytest.raises(ValueError, match="json or text"):
        logging_config("xml", "info")
    config = logging_config("json", "warn")
    assert config["root"]["level"] == "WARNING" and config["disable_existing_loggers"] is False
    assert logging_config("json", "info")["root"]["level"] == "INFO"
    logging.config.dictConfig(config)  # as Faust's worker applies it
    try:
        assert isinstance(logging.root.handlers[0].formatter, JsonFormatter)
    finally:
        logging.root.handlers.clear()
