#!/usr/bin/env bash
# Install everything warden needs on a Debian 12 host (run as root):
# the system packages the scripts and helpers use, and a virtualenv in .venv
# with warden and its test dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

if [[ $EUID -ne 0 ]]; then
  echo "install.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi

packages=(
  build-essential                  # the C helpers
  python3 python3-venv python3-dev
  rsync                            # CopyIn / CopyOut
  iproute2 iptables                # container networking (ip, tc, iptables-restore)
  btrfs-progs                      # disk limits: the qgroup pool for writable layers
  quota                            # setquota, for hosts with per-uid quotas
  debootstrap                      # the container root filesystem
  util-linux procps psmisc
  shellcheck                       # linting the scripts in the test suite
  netcat-openbsd iputils-ping      # network tests
  crun runc lxc                    # peers measured by `invoke bench`
)

echo "==> installing Debian packages"
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # The bench runs LXC containers without networking. A freshly installed lxc
  # enables lxc-net, a bridge (lxcbr0) with dnsmasq and NAT rules that nothing
  # here uses: stop and disable it, unless lxc was on this host before.
  if [[ " ${missing[*]} " == *" lxc "* ]] && [[ -d /run/systemd/system ]]; then
    systemctl disable --now lxc-net.service >/dev/null 2>&1 || true
  fi
fi

echo "==> creating .venv"
python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'
echo "==> installed: use .venv/bin/invoke (or activate .venv)"
