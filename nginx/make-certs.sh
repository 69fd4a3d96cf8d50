#!/bin/sh
# Make a self-signed CA and a server certificate signed by it, for tests and private setups.
#
#   nginx/make-certs.sh OUTDIR [NAME|IP ...]      (default names: localhost 127.0.0.1)
#
# Writes into OUTDIR:
#   ca.crt       the CA certificate: what clients trust (docker: /etc/docker/certs.d/HOST:PORT/ca.crt,
#                skopeo/podman: --cert-dir / --dest-cert-dir DIR with ca.crt in it)
#   ca.key       the CA private key (reused if OUTDIR already has ca.crt and ca.key)
#   server.crt   the server certificate, subjectAltName = every NAME (DNS) and IP given
#   server.key   its private key (nginx ssl_certificate_key)
# The first NAME is also the subject CN. Keys are ECDSA P-256. Needs openssl >= 1.1.1.
# Environment: DAYS (server certificate lifetime, default 365), CA_DAYS (default 3650).
set -eu

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
out=$1
shift
[ $# -gt 0 ] || set -- localhost 127.0.0.1
days=${DAYS:-365}
ca_days=${CA_DAYS:-3650}

mkdir -p "$out"
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

san=""
for name in "$@"; do
  case $name in
    *[!0-9.]*) # not a dotted IPv4: an IPv6 address if it has a colon, else a DNS name
      case $name in
        *:*) entry="IP:$name" ;;
        *) entry="DNS:$name" ;;
      esac ;;
    *) entry="IP:$name" ;;
  esac
  san="${san:+$san,}$entry"
done

if [ ! -f "$out/ca.crt" ] || [ ! -f "$out/ca.key" ]; then
  openssl ecparam -name prime256v1 -genkey -noout -out "$out/ca.key"
  openssl req -x509 -new -key "$out/ca.key" -sha256 -days "$ca_days" \
    -subj "/CN=tsregistry test CA $(date -u +%Y%m%d%H%M%S)" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out "$out/ca.crt"
fi

openssl ecparam -name prime256v1 -genkey -noout -out "$out/server.key"
openssl req -new -key "$out/server.key" -subj "/CN=$1" -out "$tmp/server.csr"
cat >"$tmp/ext.cnf" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
openssl x509 -req -in "$tmp/server.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
  -extfile "$tmp/ext.cnf" -out "$out/server.crt" 2>/dev/null

chmod 644 "$out/ca.crt" "$out/server.crt"
chmod 600 "$out/ca.key" "$out/server.key"
echo "make-certs: $out/server.crt for $san (CA $out/ca.crt)"
