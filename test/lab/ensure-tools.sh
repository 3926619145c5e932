#!/bin/sh
# Installs what the network lab needs (nftables, iptables) when it is missing; a no-op otherwise.
# The lab also uses `ip` (iproute2) and python3, which this image ships.
set -eu
export PATH="$PATH:/usr/sbin:/sbin"
missing=""
command -v nft >/dev/null 2>&1 || missing="$missing nftables"
command -v iptables >/dev/null 2>&1 || missing="$missing iptables"
for tool in ip python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "ensure-tools: $tool is required and missing" >&2; exit 1; }
done
[ -z "$missing" ] && exit 0
export DEBIAN_FRONTEND=noninteractive
echo "ensure-tools: installing$missing" >&2
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $missing >&2 || {
  apt-get update >&2
  apt-get install -y --no-install-recommends $missing >&2
}
