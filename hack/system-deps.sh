#!/usr/bin/env bash
# Installs the system packages the end-to-end tests need, from Debian's
# archive, when they are missing: PostgreSQL (dynamic database credentials)
# and util-linux (unshare, setpriv: the kubelet shim runs agent containers in
# their own mount namespace as the container's uid); and the local node's
# container runtime: containerd, runc, the CNI plugins, and iptables (which
# kube-proxy runs inside the node's network namespace) and iproute2.
set -euo pipefail
missing=()
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
command -v unshare >/dev/null && command -v setpriv >/dev/null || missing+=(util-linux)
command -v containerd >/dev/null && command -v ctr >/dev/null || missing+=(containerd)
[ -x /usr/sbin/runc ] || missing+=(runc)
[ -x /usr/lib/cni/ptp ] || missing+=(containernetworking-plugins)
command -v iptables >/dev/null || missing+=(iptables)
command -v ip >/dev/null || missing+=(iproute2)
# The images' CA bundle is copied from the build machine (make images).
[ -f /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${missing[*]}; run as root: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]} from Debian's packages..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
