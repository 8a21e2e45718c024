#!/usr/bin/env bash
# Installs what twinrt needs to build and test, from Debian 12's packages.
set -euo pipefail
packages=(
  g++ cmake ninja-build pkg-config
  libcaf-dev librocksdb-dev capnproto libcapnp-dev
  libtomlplusplus-dev libcli11-dev libgtest-dev
  prometheus-cpp-dev libboost-dev libcurl4-openssl-dev
  mosquitto mosquitto-clients prometheus python3
  libprotobuf-dev protobuf-compiler nlohmann-json3-dev
  libssl-dev openssl etcd-server etcd-client
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
