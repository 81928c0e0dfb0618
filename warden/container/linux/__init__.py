"""The Linux backend, one module per kernel concept (after runc's libcontainer):

    container.py  LinuxContainer: composes the parts below
    shell.py      runs root/linux's scripts and the container's own
    cgroups.py    memory and cpu limits, statistics, OOM watch; a driver per cgroup layout
    net.py        NetIn, NetOut (and its checks), LimitBandwidth
    disk.py       LimitDisk and disk usage (btrfs qgroups or per-uid quotas)
    files.py      CopyIn, CopyOut, bind mounts
    jobs.py       starting jobs in wshd (or iomux-spawn), their output files
    wshd.py       the client side of wshd's job protocol
"""

from .container import LinuxContainer

__all__ = ["LinuxContainer"]
