#!/bin/bash
# vm.test's command, run by root in the guest's copy of the checkout:
# README command 1's setup (./install.sh, invoke setup), the server started once
# through the shipped warden.service and asked for a Ping, then pytest with the
# given arguments. pytest's summary comes last (then one line if the server
# did not answer); the exit status is pytest's, or 1 when the server did not answer.
#
#   bash vm/guest-test.sh PYTEST-ARGS...
set -uo pipefail

step() { printf '==> guest: %s\n' "$*"; }
fail() { printf 'vm.test: FAILED: %s\n' "$*"; exit 1; }

step "$(uname -sr); /sys/fs/cgroup is $(stat -fc %T /sys/fs/cgroup)" \
  "($(tr '\n' ' ' </sys/fs/cgroup/cgroup.controllers 2>/dev/null || echo 'no cgroup.controllers'))"
step "$(iptables --version 2>&1); modules loaded: $(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')"

step "./install.sh (offline: WARDEN_OFFLINE=${WARDEN_OFFLINE:-}, WARDEN_WHEELHOUSE=${WARDEN_WHEELHOUSE:-})"
./install.sh || fail "./install.sh exited $?"
step ".venv/bin/invoke setup"
.venv/bin/invoke setup || fail ".venv/bin/invoke setup exited $?"

server_ok=1
step "warden.service: invoke warden.install-service, systemctl start warden"
if .venv/bin/invoke warden.install-service && systemctl start warden.service; then
  for _ in $(seq 60); do
    .venv/bin/warden -- ping >/dev/null 2>&1 && break
    systemctl is-active --quiet warden.service || break
    sleep 1
  done
fi
if .venv/bin/warden -- ping; then
  step "the server answers Ping"
else
  server_ok=0
  echo "vm.test: FAILED: the server started by warden.service does not answer Ping"
  systemctl status --no-pager --lines=0 warden.service
  echo "--- journalctl -u warden.service (last 12 lines)"
  journalctl --no-pager -u warden.service -n 12 -o cat
  echo "--- /var/log/warden.log (last line)"
  tail -n 1 /var/log/warden.log 2>/dev/null
fi
systemctl stop warden.service

step "python -m pytest $*"
.venv/bin/python -m pytest -q -ra -p no:cacheprovider "$@"
status=$?
if ((server_ok == 0)); then
  echo "vm.test: FAILED: the server did not answer Ping through warden.service (see above)"
  ((status == 0)) && status=1
fi
exit "$status"
