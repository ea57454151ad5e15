#!/bin/sh
# Regenerates the testkit's TLS fixtures (see tls.rs): a test CA, a server certificate it signed
# for 127.0.0.1 and localhost, a client certificate it signed (mTLS), and an unrelated "other"
# CA that a client can wrongly trust. ECDSA P-256, valid for 100 years, for tests only: the
# private keys are public and worthless. Run from this directory: sh generate.sh
set -eu
days=36500
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -new -key ca.key -days $days -subj "/CN=telemetry testkit CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem
key other-ca.key
openssl req -x509 -new -key other-ca.key -days $days -subj "/CN=telemetry testkit other CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out other-ca.pem
rm other-ca.key
sign() { # name, subject, extensions
  key "$1.key"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days $days -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm "$1.csr" "$1.ext"
}
sign server "/CN=localhost" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
sign client "/CN=telemetry testkit client" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
rm -f ca.key ca.srl
