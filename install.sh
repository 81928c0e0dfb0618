#!/usr/bin/env bash
# Install everything warden needs on a Debian 12 host (run as root):
# the system packages the scripts and helpers use, and a virtualenv in .venv
# with warden and its test dependencies. Safe to run again.
#
#   ./install.sh                   install (apt-get for missing packages, pip from PyPI)
#   ./install.sh --offline         no network: the Debian packages must already be
#                                  installed, and pip installs from a wheelhouse
#                                  (env WARDEN_WHEELHOUSE, a directory of wheels)
#   ./install.sh --print-packages  print the Debian packages, one per line, and exit
#
# WARDEN_OFFLINE=1 in the environment is the same as --offline. The VM test
# image (vm/image.py) reads --print-packages, so this list is the only one.
set -euo pipefail
cd "$(dirname "$0")"

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

offline=${WARDEN_OFFLINE:-}
for arg in "$@"; do
  case $arg in
    --print-packages) printf '%s\n' "${packages[@]}"; exit 0 ;;
    --offline) offline=1 ;;
    *) echo "install.sh: unknown option '$arg' (see the comment at the top)" >&2; exit 2 ;;
  esac
done

if [[ $EUID -ne 0 ]]; then
  echo "install.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

pip_source=()
if [[ -n $offline ]]; then
  echo "==> offline: checking the Debian packages are installed"
  if ((${#missing[@]})); then
    echo "install.sh: offline, and these Debian packages are not installed: ${missing[*]}" >&2
    echo "install.sh: install them first (apt-get install ${missing[*]}) or run without --offline" >&2
    exit 1
  fi
  wheelhouse=${WARDEN_WHEELHOUSE:-}
  if [[ -z $wheelhouse || ! -d $wheelhouse ]]; then
    echo "install.sh: offline needs WARDEN_WHEELHOUSE, a directory of wheels (got '${wheelhouse}')" >&2
    exit 1
  fi
  pip_source=(--no-index --find-links "$wheelhouse")
  export PIP_DISABLE_PIP_VERSION_CHECK=1
else
  echo "==> installing Debian packages"
  if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
    # The bench runs LXC containers without networking. A freshly installed lxc
    # starts lxc-net, a bridge (lxcbr0) with dnsmasq, NAT rules and ip_forward=1
    # that nothing here uses: unless lxc was on this host before, stop it and
    # switch it off with its own setting. (Disabling the unit is not enough:
    # lxc.service wants lxc-net and starts it at boot; masking it makes
    # lxc.service wait 30 s at boot for the bridge. The VM test guest showed both.)
    if [[ " ${missing[*]} " == *" lxc "* ]]; then
      if [[ -d /run/systemd/system ]]; then
        systemctl disable --now lxc-net.service >/dev/null 2>&1 || true
      fi
      if [[ -f /etc/default/lxc-net ]]; then
        sed -i 's/^USE_LXC_BRIDGE=.*/USE_LXC_BRIDGE="false"/' /etc/default/lxc-net
      fi
    fi
  fi
fi

# The socket's group (config/*.yml: root:warden 0660): its members may use warden.
getent group warden >/dev/null || groupadd --system warden

echo "==> creating .venv"
python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
.venv/bin/pip install -q "${pip_source[@]}" --upgrade pip
.venv/bin/pip install -q "${pip_source[@]}" -e '.[test]'
echo "==> installed: use .venv/bin/invoke (or activate .venv)"
