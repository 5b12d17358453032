#!/usr/bin/env bash
# make-certs.sh DIR NAME... — certificates for mutual TLS between nodes.
#
# Creates (with the `openssl` command) a dedicated cluster CA, DIR/ca.pem and
# DIR/ca.key, unless DIR already holds one, and for every NAME a P-256 key
# DIR/NAME.key and a certificate DIR/NAME.pem (CN=NAME) signed by that CA.
# Keys are mode 0600, DIR 0700. Every file is written beside its final name
# and renamed over it, so a running node (CAF reads the files again for every
# connection) never sees a half-written or missing file: re-running the
# script for a name rotates that node's certificate in place.
#
# A node then runs with
#   --openssl.certificate=DIR/NAME.pem --openssl.key=DIR/NAME.key --openssl.cafile=DIR/ca.pem
# Nodes accept any certificate of this CA (CAF checks no host name): keep the
# CA for the cluster alone and DIR/ca.key off the nodes (docs/operations.md).
#
# Environment: CUSTODIAN_CERT_DAYS (node certificates, default 397),
# CUSTODIAN_CA_DAYS (the CA, default 3650).
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 DIR NAME..." >&2
  echo "  makes DIR/ca.pem (unless present) and DIR/NAME.pem + DIR/NAME.key per node" >&2
  exit 2
fi
command -v openssl > /dev/null || {
  echo "make-certs: the openssl command is missing (apt-get install -y openssl)" >&2
  exit 1
}

dir="$1"
shift
node_days="${CUSTODIAN_CERT_DAYS:-397}"
ca_days="${CUSTODIAN_CA_DAYS:-3650}"
umask 077
mkdir -p "$dir"
chmod 700 "$dir"
tmp="$(mktemp -d "$dir/.make-certs.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

for name in "$@"; do
  if ! [[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || [ "$name" = ca ]; then
    echo "make-certs: \"$name\" is not a node name (letters, digits, . _ -; not \"ca\")" >&2
    exit 2
  fi
done

if [ ! -s "$dir/ca.pem" ] || [ ! -s "$dir/ca.key" ]; then
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/ca.key" 2> /dev/null
  openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days "$ca_days" \
    -subj "/CN=custodian cluster CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$tmp/ca.pem"
  chmod 600 "$tmp/ca.key"
  chmod 644 "$tmp/ca.pem"
  mv -f "$tmp/ca.key" "$dir/ca.key"
  mv -f "$tmp/ca.pem" "$dir/ca.pem"
  echo "make-certs: new cluster CA $dir/ca.pem (valid $ca_days days)"
fi

cat > "$tmp/ext.cnf" << 'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyAgreement
extendedKeyUsage=serverAuth,clientAuth
EOF

for name in "$@"; do
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/$name.key" 2> /dev/null
  openssl req -new -key "$tmp/$name.key" -subj "/CN=$name" -out "$tmp/$name.csr"
  openssl x509 -req -in "$tmp/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -CAserial "$tmp/ca.srl" -sha256 -days "$node_days" \
    -extfile "$tmp/ext.cnf" -out "$tmp/$name.pem" 2> /dev/null
  openssl verify -CAfile "$dir/ca.pem" "$tmp/$name.pem" > /dev/null
  chmod 600 "$tmp/$name.key"
  chmod 644 "$tmp/$name.pem"
  # Key first: a node reading between the two renames fails that one handshake
  # (key and certificate differ) and retries; it never reads a missing file.
  mv -f "$tmp/$name.key" "$dir/$name.key"
  mv -f "$tmp/$name.pem" "$dir/$name.pem"
  echo "make-certs: $dir/$name.pem, $dir/$name.key (CN=$name, valid $node_days days)"
done
