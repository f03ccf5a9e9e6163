"""A Kubernetes API stand-in over TLS on 127.0.0.1: Secrets only (get, create, merge-patch with resourceVersion).

Enough for the chart's key generator, which talks to the API with the pod's service-account files; the test
lays out such files (token, namespace, ca.crt) and points KUBERNETES_SERVICE_HOST/PORT here.
"""

import base64
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import trustme


class FakeKubernetes:
    def __init__(self, workdir: Path, *, namespace: str = "lookout") -> None:
        self.namespace = namespace
        self.secrets: dict[str, dict] = {}
        self.token = "test-token"
        self.serviceaccount = workdir / "serviceaccount"
        self.serviceaccount.mkdir()
        (self.serviceaccount / "token").write_text(self.token)
        (self.serviceaccount / "namespace").write_text(namespace)
        authority = trustme.CA()
        authority.cert_pem.write_to_path(str(self.serviceaccount / "ca.crt"))
        self._lock = threading.Lock()
        self._version = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        authority.issue_cert("127.0.0.1").configure_cert(tls)
        self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def environment(self) -> dict[str, str]:
        return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self._server.server_address[1])}

    def data(self, name: str) -> dict[str, str]:
        return {key: base64.b64decode(value).decode() for key, value in self.secrets[name]["data"].items()}

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    def _handler(self):
        fake = self
        prefix = f"/api/v1/namespaces/{fake.namespace}/secrets"

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: dict) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _body(self) -> dict:
                return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")

            def _authorized(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    self._answer(401, {"message": "Unauthorized"})
                    return False
                return True

            def do_GET(self) -> None:
                if self._authorized():
                    name = self.path.removeprefix(prefix + "/")
                    with fake._lock:
                        secret = fake.secrets.get(name)
                    self._answer(200, secret) if secret else self._answer(404, {"message": "not found"})

            def do_POST(self) -> None:
                if not self._authorized():
                    return
                body = self._body()
                with fake._lock:
                    if body["metadata"]["name"] in fake.secrets:
                        return self._answer(409, {"message": "already exists"})
                    body["metadata"]["resourceVersion"] = fake._next_version()
                    fake.secrets[body["metadata"]["name"]] = body
                self._answer(201, body)

            def do_PATCH(self) -> None:
                if not self._authorized():
                    return
                assert self.headers["Content-Type"] == "application/merge-patch+json"
                name, patch = self.path.removeprefix(prefix + "/"), self._body()
                with fake._lock:
                    secret = fake.secrets.get(name)
                    if secret is None:
                        return self._answer(404, {"message": "not found"})
                    if patch["metadata"]["resourceVersion"] != secret["metadata"]["resourceVersion"]:
                        return self._answer(409, {"message": "the object has been modified"})
                    secret["data"].update(patch.get("data") or {})
                    secret["metadata"]["resourceVersion"] = fake._next_version()
                self._answer(200, secret)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
