"""A Debian 12 test host under qemu: `invoke vm.image`, `vm.run -- CMD`, `vm.test`.

Our own machines run an unusual cgroup v1/hybrid kernel; our users run stock
Debian 12 with cgroup v2 only. This package builds a Debian 12 disk image with
everything warden needs offline (`image`), boots a throw-away copy of it with
the current checkout inside and runs a command there (`guest`), and wires both
into invoke (`tasks`).
"""
