"""What a job asks for that only the running service can judge, checked at submission, before any
byte of its media is stored: every URL the job will be fetched from or post to goes through the URL
guard (streams/urls.py, with this service's DIARIST_URL_ALLOW), its callback headers are checked,
and its language is checked against the model that will run it.

A refusal is a 422 problem that says the address is not allowed or the URL is invalid, never what
is there. The guard checks again when the media is fetched (the job service) and when a callback
is delivered (streams/jobs/callbacks.py), connecting only to the addresses it checked then.
"""
from __future__ import annotations

import asyncio
from typing import Any

from diarist.api.options import language_refusal
from diarist.api.problems import Problem
from diarist.streams.jobs.service import JobService
from diarist.streams.urls import HeaderRefused, URLInvalid, URLRefused, check_headers, check_url


async def checked_url(jobs: JobService, url: Any, what: str) -> str:
    """The URL, if the guard allows it (resolving its host in a thread); 422 otherwise."""
    try:
        checked = await asyncio.to_thread(check_url, url, jobs.url_allow, what=what)
    except (URLInvalid, URLRefused) as exc:
        raise Problem(422, str(exc)) from None
    return checked.url


def checked_headers(headers: Any, what: str) -> dict[str, str]:
    """Caller-chosen headers to send, if none could split or redirect a request; 422 otherwise."""
    try:
        check_headers(headers)
    except HeaderRefused as exc:
        raise Problem(422, f"{what}: {exc}") from None
    return dict(headers)


async def check_job(jobs: JobService, options: Any) -> None:
    """A job's parsed options (api/options.py), as this service can take them: its callback URLs and
    headers pass the guard, and a job without a model of its own asks the default model for a
    language it knows. Every create path calls this before it stores media."""
    for url in options["callback_urls"]:
        await checked_url(jobs, url, "a callback URL")
    checked_headers(options["callback_headers"], "callback_headers")
    if options["model"] is None and jobs.default_model is not None:
        refused = language_refusal(options["language"], jobs.default_model)
        if refused:
            raise Problem(422, f"{refused} (the default model)")
