"""The engine under gevent's monkey-patching, as in a worker: run in a child process (patching this test
process would change every other test), against servers this process starts on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from probe_servers import read_request

CHILD = textwrap.dedent("""
    from gevent import monkey

    monkey.patch_all()

    import json
    import sys
    import time

    import gevent

    from lookout.probes.engine import ProbeSpec, TargetPolicy, nameservers_set, probe

    config = json.loads(sys.argv[1])
    nameservers_set([config["dns"]])
    local = TargetPolicy(allow_private=True)


    def together(specs):
        start = time.perf_counter()
        greenlets = [gevent.spawn(probe, spec) for spec in specs]
        gevent.joinall(greenlets, raise_error=True)
        return {"elapsed": time.perf_counter() - start,
                "errors": sorted({greenlet.value.error for greenlet in greenlets}),
                "phases": [greenlet.value.phases for greenlet in greenlets]}


    def stuck(*args, **kwargs):  # stands for any library loop that would wait past the deadline
        gevent.sleep(30)


    def backstopped():
        import lookout.probes.engine.http_probe as http_probe

        original, http_probe._read_capped = http_probe._read_capped, stuck
        try:
            return together([ProbeSpec(f"http://127.0.0.1:{config['tcp']}/", policy=local, timeout=0.3)])
        finally:
            http_probe._read_capped = original


    print(json.dumps({
        "backstop": backstopped(),
        "lookups": together([ProbeSpec(f"tcp://host{i}.fleet.lookout.test:{config['tcp']}", type="tcp",
                                       policy=local, timeout=5) for i in range(50)]),
        "hanging": together([ProbeSpec(f"http://127.0.0.1:{config['hang']}/", policy=local, timeout=0.5)
                             for _ in range(50)]),
        "https": together([ProbeSpec(f"https://127.0.0.1:{config['https']}/", policy=local, ca_pem=config["ca"],
                                     timeout=5, conditions=('[BODY].status == "UP"',)) for _ in range(10)]),
    }))
""")


def test_under_gevent_lookups_run_concurrently_and_deadlines_hold(tcp_server, dns_server, https_server) -> None:
    dns_server.delay = 0.3  # per query; each query is answered in its own thread
    def accepting_then_ok(conn, server) -> None:
        if read_request(conn):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    accepting = tcp_server(accepting_then_ok)
    hanging = tcp_server(lambda conn, server: (read_request(conn), server.stop.wait(10)))
    secure = https_server()
    config = {"dns": dns_server.address, "tcp": accepting.port, "hang": hanging.port, "https": secure.port,
              "ca": secure.ca_pem}

    child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(config)], capture_output=True, text=True,
                           timeout=60)

    assert child.returncode == 0, child.stderr
    results = json.loads(child.stdout)
    lookups = results["lookups"]
    assert lookups["errors"] == [""]
    # 50 lookups of 0.3 s each: together in ~0.3 s. Through gevent's default resolver (a pool of 10
    # threads running getaddrinfo) they would queue, and take at least 5 x 0.3 s.
    assert lookups["elapsed"] < 1.0
    assert all(0.25 < phases["dns"] < 0.9 for phases in lookups["phases"])
    assert len([query for query in dns_server.queries if query[0].endswith(".fleet.lookout.test")]) == 50
    hanging_results = results["hanging"]
    assert hanging_results["errors"] == ["timed out after 0.5s"]
    assert hanging_results["elapsed"] < 0.9
    assert results["https"]["errors"] == [""]
    # A wait the per-operation deadlines cannot see is still cut by the greenlet-level backstop.
    assert results["backstop"]["errors"] == ["timed out after 0.3s"]
    assert results["backstop"]["elapsed"] < 0.9
