# Sourced by the TLS tests: certificates made with the openssl CLI for one run.
#
# make_test_certs DIR LOG: writes into DIR
#   ca.pem, ca.key        a test CA
#   other.pem, other.key  an unrelated CA (a client trusting it must refuse our servers)
#   node.pem, node.key    a server certificate the CA signs, for localhost and 127.0.0.1
#   client.pem, client.key a client certificate the CA signs (CN twinrt-client)
# and appends openssl's output to LOG. Returns non-zero naming the step that failed.
make_test_certs() {
  local d=$1 log=$2
  mkdir -p "$d" || return 1
  (
    cd "$d" || exit 1
    step() { local what=$1; shift; "$@" >> "$log" 2>&1 || { echo "openssl: $what" >&2; exit 1; }; }
    step "CA" openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=twinrt test CA" \
      -keyout ca.key -out ca.pem
    step "other CA" openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=other CA" \
      -keyout other.key -out other.pem
    step "server request" openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout node.key -out node.csr
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.ext
    step "server certificate" openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key \
      -CAcreateserial -days 2 -extfile san.ext -out node.pem
    step "client request" openssl req -newkey rsa:2048 -nodes -subj "/CN=twinrt-client" \
      -keyout client.key -out client.csr
    printf 'extendedKeyUsage=clientAuth\n' > client.ext
    step "client certificate" openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key \
      -CAcreateserial -days 2 -extfile client.ext -out client.pem
  )
}
