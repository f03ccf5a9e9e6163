"""Create the release's generated Secret once, add keys it lacks, and never change a key it has.

Runs as a Helm pre-install/pre-upgrade hook (Argo CD runs it as a PreSync hook) in the Lookout image, with
the standard library only. Keys are generated here, in the cluster, rather than by the template: `helm
template` and GitOps renders cannot see existing Secrets (`lookup` returns nothing there), so a key generated
at render time would change on every render and lock users out of what it encrypted.

Usage: keygen.py SPEC.json [--serviceaccount DIR]
SPEC: {"secret": NAME, "labels": {...}, "keys": {KEY: {"random": "token"|"hex"|"fernet"} | {"template": S}}}
A template names other keys in braces: "postgres://lookout:{postgresql-password}@host:5432/lookout".
"""

import argparse
import base64
import json
import os
import secrets
import ssl
import sys
import time
import urllib.error
import urllib.request

SERVICEACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
ATTEMPTS = 10


def random_value(kind: str) -> str:
    if kind == "fernet":  # 32 random bytes, urlsafe base64: a Fernet key, and plain key material for anything else
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    if kind == "hex":  # passwords that go into URLs unescaped
        return secrets.token_hex(24)
    if kind == "token":
        return secrets.token_urlsafe(48)
    raise ValueError(f"unknown random kind {kind!r}")


def missing_values(spec: dict[str, dict[str, str]], existing: dict[str, str]) -> dict[str, str]:
    """Values for the keys not in `existing`: random ones first, then templates over the final values."""
    added = {key: random_value(rule["random"]) for key, rule in spec.items()
             if key not in existing and "random" in rule}
    final = {**existing, **added}
    for key, rule in spec.items():
        if key not in existing and "template" in rule:
            added[key] = rule["template"].format_map(final)
    return added


class KubernetesApi:
    def __init__(self, serviceaccount: str) -> None:
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ.get("KUBERNETES_SERVICE_PORT_HTTPS") or os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        self.base = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        with open(os.path.join(serviceaccount, "token"), encoding="utf-8") as f:
            self.token = f.read().strip()
        with open(os.path.join(serviceaccount, "namespace"), encoding="utf-8") as f:
            self.namespace = f.read().strip()
        self.tls = ssl.create_default_context(cafile=os.path.join(serviceaccount, "ca.crt"))

    def call(self, method: str, path: str, body: dict | None = None,
             content_type: str = "application/json") -> tuple[int, dict]:
        request = urllib.request.Request(
            self.base + path, method=method, data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type,
                     "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self.tls, timeout=15) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")


def decoded(secret: dict) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}


def encoded(values: dict[str, str]) -> dict[str, str]:
    return {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}


def ensure_secret(api: KubernetesApi, spec: dict) -> str:
    """One attempt; returns what happened, or "conflict" when another writer got there first."""
    path = f"/api/v1/namespaces/{api.namespace}/secrets"
    status, current = api.call("GET", f"{path}/{spec['secret']}")
    if status == 404:
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": spec["secret"], "labels": spec.get("labels", {})},
                "data": encoded(missing_values(spec["keys"], {}))}
        status, answer = api.call("POST", path, body)
        if status == 409:
            return "conflict"
        if status >= 300:
            raise RuntimeError(f"creating Secret {spec['secret']}: HTTP {status}: {answer.get('message')}")
        return f"created Secret {spec['secret']} with {', '.join(sorted(spec['keys']))}"
    if status >= 300:
        raise RuntimeError(f"reading Secret {spec['secret']}: HTTP {status}: {current.get('message')}")
    added = missing_values(spec["keys"], decoded(current))
    if not added:
        return f"Secret {spec['secret']} already has every key; nothing changed"
    # The resourceVersion makes the patch conditional: a concurrent change answers 409 and we read again.
    patch = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}, "data": encoded(added)}
    status, answer = api.call("PATCH", f"{path}/{spec['secret']}", patch, "application/merge-patch+json")
    if status == 409:
        return "conflict"
    if status >= 300:
        raise RuntimeError(f"updating Secret {spec['secret']}: HTTP {status}: {answer.get('message')}")
    return f"added {', '.join(sorted(added))} to Secret {spec['secret']}; existing keys unchanged"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--serviceaccount", default=SERVICEACCOUNT)
    args = parser.parse_args(argv)
    with open(args.spec, encoding="utf-8") as f:
        spec = json.load(f)
    api = KubernetesApi(args.serviceaccount)
    for attempt in range(ATTEMPTS):
        outcome = ensure_secret(api, spec)
        if outcome != "conflict":
            print(outcome, flush=True)
            return 0
        time.sleep(0.5 * (attempt + 1))
    print(f"gave up after {ATTEMPTS} conflicting writes to Secret {spec['secret']}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
