"""corral.testkit: N fake nodes on this machine, wired like the paper's site.

Each node is a light container held by its init (`nodeinit`): own PID, mount,
UTS, IPC and network namespaces, hostname ``nodeN.project.edu``, private
/etc/corral, /etc/ganeti, /var/lib/corral, /var/log/corral, /iso, a fresh
tmpfs /run, a sparse ext4 disk on /srv/ganeti, a shared dir on
/srv/ganeti/shared-file-storage, copy-on-write views of the host's /etc, /var,
/srv and /root. Links: one veth per network per node into a switch namespace
(`netns`). Entry points: `cluster.Testkit` (Python API) and ``corral-testkit``
(`cli`). This package imports nothing at load time so the node init starts fast.
"""
