#!/bin/bash
# Destroy a container: its processes, cgroups and interfaces (skeleton
# destroy.sh), then its dir. Idempotent: a missing dir is fine.
#
#   destroy.sh CONTAINER_DIR
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x

if [[ $# -ne 1 ]]; then
  echo "usage: $0 CONTAINER_DIR" >&2
  exit 1
fi
target=${1%/}
# The depot's own scratch dir is not a container.
if [[ ${target##*/} == tmp ]]; then
  exit 0
fi
if [[ ! -d $target ]]; then
  exit 0
fi

if [[ -x $target/destroy.sh ]]; then
  "$target/destroy.sh"
fi

# Never follow a mount out of the dir (nothing should be mounted there in
# the host's namespace, but a failed teardown must not cost other data).
for attempt in 1 2 3 4 5; do
  if rm -rf --one-file-system -- "$target"; then
    exit 0
  fi
  echo "destroy.sh: removing $target failed (attempt $attempt)" >&2
  sleep 0.3
done
exit 1
