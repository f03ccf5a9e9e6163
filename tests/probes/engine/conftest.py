"""Fixtures of the probe engine tests; they live in probe_servers.py, next to the helpers tests import.

These tests import no Django and need no database or broker: the root conftest sets neither up for a run of
only this tree (`./scripts/test tests/probes/engine`).
"""

from probe_servers import _no_proxy, dns_server, https_server, local_names, tcp_server, tls_ca  # noqa: F401
