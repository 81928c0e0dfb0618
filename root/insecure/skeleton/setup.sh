#!/usr/bin/env bash
# Runs once when the container is created: the directories jobs and files live in.
set -euo pipefail
cd "$(dirname "$0")"

mkdir -p root jobs tmp
