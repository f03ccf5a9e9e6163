"""Fixtures of the probe engine tests; they live in probe_servers.py, next to the helpers tests import."""

from probe_servers import _no_proxy, dns_server, https_server, local_names, tcp_server, tls_ca  # noqa: F401
