"""Schemathesis hooks for tests/test_fuzz.py (SCHEMATHESIS_HOOKS=diarist_fuzz_hooks, with this folder on
PYTHONPATH): every value generated for a `format: uri` field is an http URL on loopback, which the
service under test allows (DIARIST_URL_ALLOW=127.0.0.0/8) and where nothing listens on port 9, or
an address literal the URL guard refuses before connecting. No generated URL names a host to look
up; the network fence (tests/fence) stops anything else all the same.
"""
from __future__ import annotations

import schemathesis
from hypothesis import strategies as st

PATHS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~/", max_size=24)
LOOPBACK = st.builds("http://127.0.0.1:9/{}".format, PATHS)
REFUSED = st.sampled_from([
    "http://10.0.0.1/a.wav", "http://169.254.169.254/latest/meta-data/", "http://[fd00::1]/a.wav",
    "http://0177.0.0.1/a.wav", "http://0x0a000001/a.wav", "http://[::ffff:192.168.0.1]/a.wav", "http://0.0.0.0/",
    "https://100.64.0.1/hook", "http://[fe80::1]/hook", "http://127.0.0.1:9@10.0.0.1/a.wav",
])

schemathesis.openapi.format("uri", st.one_of(LOOPBACK, REFUSED))
