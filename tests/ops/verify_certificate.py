#!/usr/bin/env python3
"""Checks a Custodian erasure certificate with an Ed25519 implementation other
than the node's (pyca/cryptography, on OpenSSL; the node signs with libsodium).

    verify_certificate.py CERTIFICATE.json KEYS.json [SCHEMA.json]

CERTIFICATE.json: the answer of GET /v1/jobs/{id}/certificate
({"certificate", "signature", "key_id"}, base64url without padding).
KEYS.json: the answer of GET /v1/keys ({"keys": [{"key_id", "alg", "public_key"}]}).
Exit 0 and the certificate's JSON when the signature holds under the key the
certificate names (and that key's id is the BLAKE2b-256 of it, first 8 bytes);
exit 1 with a sentence otherwise. With SCHEMA.json (docs/certificate.schema.json)
the certificate's JSON must also be valid under that JSON Schema (jsonschema).
"""
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def main(argv):
    if len(argv) not in (3, 4):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        answer = json.load(f)
    with open(argv[2]) as f:
        keys = json.load(f).get("keys", [])
    key = next((k for k in keys if k.get("key_id") == answer.get("key_id")), None)
    if key is None:
        print(f"invalid: no published key has the id {answer.get('key_id')!r}")
        return 1
    if key.get("alg") != "Ed25519":
        print(f"invalid: key {key['key_id']} is {key.get('alg')!r}, not Ed25519")
        return 1
    pk = unb64url(key["public_key"])
    if hashlib.blake2b(pk, digest_size=32).digest()[:8].hex() != key["key_id"]:
        print(f"invalid: key {key['key_id']} is not the id of its public key")
        return 1
    body = unb64url(answer["certificate"])
    try:
        Ed25519PublicKey.from_public_bytes(pk).verify(unb64url(answer["signature"]), body)
    except InvalidSignature:
        print(f"invalid: the signature does not hold under key {key['key_id']}")
        return 1
    cert = json.loads(body)
    print(json.dumps(cert, indent=2, sort_keys=True))
    if len(argv) == 4:
        import jsonschema
        with open(argv[3]) as f:
            schema = json.load(f)
        try:
            jsonschema.Draft202012Validator(schema).validate(cert)
        except jsonschema.ValidationError as e:
            print(f"invalid: not a certificate as {argv[3]} describes it: {e.message}")
            return 1
    print(f"valid: erasure certificate of job {cert.get('job_id')} signed by key {key['key_id']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
