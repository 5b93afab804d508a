"""A real local timestamp authority for the PAdES tests: certomancer's `animate` server.

usage: local_tsa.py WORK_DIR PORT

Makes (in WORK_DIR) ECDSA P-256 keys and a certomancer configuration of one PKI: a root CA, a
timestamp authority certified by it (extended key usage timeStamping), and an e-Meterai issuer
certified by it. Writes the certificates with `certomancer mass-summon` (WORK_DIR/certs/), the
issuer's key as WORK_DIR/issuer-key.pem and its certificate followed by the root as
WORK_DIR/issuer-chain.pem, then becomes `certomancer animate` on 127.0.0.1:PORT (same process, so
the caller stops it by its pid). The authority answers at
http://127.0.0.1:PORT/emeterai-test/tsa/tsa.
"""
import os
import pathlib
import subprocess
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ARCH = "emeterai-test"

CONFIG = """
external-url-prefix: "http://127.0.0.1:{port}"
keysets:
  keys:
    path-prefix: keys
    keys:
      root: {{path: root.key.pem}}
      tsa: {{path: tsa.key.pem}}
      issuer: {{path: issuer.key.pem}}
pki-architectures:
  {arch}:
    keyset: keys
    entity-defaults:
      country-name: ID
      organization-name: e-Meterai Test PKI
    entities:
      root: {{common-name: e-Meterai Test Root}}
      tsa: {{common-name: e-Meterai Test TSA}}
      issuer: {{common-name: e-Meterai Test Issuer}}
    certs:
      root:
        subject: root
        issuer: root
        validity: {{valid-from: "2000-01-01T00:00:00+0000", valid-to: "2099-12-31T00:00:00+0000"}}
        extensions:
          - id: basic_constraints
            critical: true
            value: {{ca: true}}
          - id: key_usage
            critical: true
            smart-value: {{schema: key-usage, params: [digital_signature, key_cert_sign, crl_sign]}}
      tsa:
        subject: tsa
        issuer: root
        validity: {{valid-from: "2000-01-01T00:00:00+0000", valid-to: "2099-12-31T00:00:00+0000"}}
        extensions:
          - id: key_usage
            critical: true
            smart-value: {{schema: key-usage, params: [digital_signature]}}
          - id: extended_key_usage
            critical: true
            value: [time_stamping]
      issuer:
        subject: issuer
        issuer: root
        validity: {{valid-from: "2000-01-01T00:00:00+0000", valid-to: "2099-12-31T00:00:00+0000"}}
        extensions:
          - id: key_usage
            critical: true
            smart-value: {{schema: key-usage, params: [digital_signature, non_repudiation]}}
    services:
      time-stamping:
        tsa:
          signing-key: tsa
          signing-cert: tsa
"""


def write_key(path: pathlib.Path) -> None:
    if path.exists():
        return
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def main() -> None:
    work = pathlib.Path(sys.argv[1]).resolve()
    port = int(sys.argv[2])
    keys = work / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    for name in ("root", "tsa", "issuer"):
        write_key(keys / f"{name}.key.pem")
    config = work / "certomancer.yml"
    config.write_text(CONFIG.format(port=port, arch=ARCH))
    certs = work / "certs"
    base = [sys.executable, "-m", "certomancer", "--config", str(config)]
    subprocess.run([*base, "mass-summon", "--no-pfx", "--flat", ARCH, str(certs)], check=True, stdout=subprocess.DEVNULL)
    pem = {name: (certs / f"{name}.cert.pem").read_text() for name in ("root", "issuer", "tsa")}
    (work / "issuer-chain.pem").write_text(pem["issuer"] + pem["root"])
    (work / "issuer-key.pem").write_bytes((keys / "issuer.key.pem").read_bytes())
    (work / "root.pem").write_text(pem["root"])
    sys.stdout.flush()
    os.execv(sys.executable, [*base, "animate", "--port", str(port), "--no-web-ui"])


if __name__ == "__main__":
    main()
