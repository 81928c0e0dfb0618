#!/bin/bash
# host_mirror SUITE: the host's own apt mirror for SUITE, so that Debian roots
# built here (the container rootfs, the VM test image) download from the same
# place apt does. Sourced by rootfs/setup.sh; vm/image.py calls it as
#
#   bash -c 'source root/linux/rootfs/mirror.sh && host_mirror bookworm'
#
# Prints nothing when no source names SUITE; callers pick a default.

# Print the first mirror URI configured on the host for the given suite,
# looking at both the one-line and the deb822 apt source formats.
host_mirror() {
  local suite=$1 file
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r $file ]] || continue
    awk -v s="$suite" '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == s) { print $i; exit }
      }' "$file"
  done
  for file in /etc/apt/sources.list.d/*.sources; do
    [[ -r $file ]] || continue
    awk -v s="$suite" '
      function flush() { if (uri != "" && has && !enabled_no) { print uri; found = 1 } uri = ""; has = 0; enabled_no = 0 }
      /^[[:space:]]*$/ { flush(); if (found) exit; next }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) has = 1 }
      /^Enabled:[[:space:]]*no/ { enabled_no = 1 }
      END { if (!found) flush() }' "$file"
  done
}
