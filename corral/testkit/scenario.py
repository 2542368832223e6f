"""The paper's scenario (sections 2.10 to 3.7) as data, run on a testkit cluster.

`make demo` prints it as a user would see it; tests/e2e runs the same steps
and asserts on their outputs. Each step is a command typed on a node, with
the answer typed at its confirmation prompt when it asks one.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from corral.testkit.cluster import Testkit

INSTANCE = "testvm.project.edu"
ISO = "/iso/debian-7.9.0-amd64-netinst.iso"
IMAGE_ETC = "/etc/ganeti/instance-image"


@dataclass
class Step:
    """One command of the scenario."""

    title: str
    argv: list[str]
    node: str = "node1"
    answer: str | None = None  # typed at the prompt
    quiet: bool = False  # plumbing the paper does by hand (not shown as a command)
    allowed_codes: tuple[int, ...] = (0,)


@dataclass
class StepResult:
    step: Step
    returncode: int
    stdout: str
    stderr: str
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def setup_steps() -> list[Step]:
    return [
        Step(
            "2.10 Initialize the cluster",
            [
                "gnt-cluster",
                "init",
                "--master-netdev=br-man",
                "--enabled-hypervisors=fake",
                "-N",
                "link=br-public",
                "--vg-name",
                "ganeti",
                "cluster.project.edu",
            ],
        ),
        Step(
            "2.10 Hypervisor parameters",
            [
                "gnt-cluster",
                "modify",
                "-H",
                "fake:kernel_path=,initrd_path=,vnc_bind_address=0.0.0.0",
            ],
        ),
        Step("2.10 Add node2", ["gnt-node", "add", "node2.project.edu"]),
        Step("2.10 Node list", ["gnt-node", "list"]),
        Step("2.10 Add node3", ["gnt-node", "add", "node3.project.edu"]),
        Step("2.10 Node list", ["gnt-node", "list"]),
        Step(
            "2.12 Write the cd variant",
            sh(
                f"mkdir -p {IMAGE_ETC}/variants && "
                f'printf \'CDINSTALL="yes"\\nNOMOUNT="yes"\\n\' > {IMAGE_ETC}/variants/cd.conf && '
                f"printf 'default\\ncd\\n' > {IMAGE_ETC}/variants.list"
            ),
            quiet=True,
        ),
        Step("2.12 Copy cd.conf", ["gnt-cluster", "copyfile", f"{IMAGE_ETC}/variants/cd.conf"]),
        Step("2.12 Copy variants.list", ["gnt-cluster", "copyfile", f"{IMAGE_ETC}/variants.list"]),
        Step("2.12 OS list", ["gnt-os", "list"]),
        Step(
            "2.13 Put an ISO image in /iso",
            sh(f"mkdir -p /iso && head -c 48M /dev/urandom > {ISO}"),
            quiet=True,
        ),
        Step("2.13 Distribute the ISO", ["gnt-cluster", "copyfile", ISO]),
        Step(
            "2.14 Create the instance",
            [
                "gnt-instance",
                "add",
                "-t",
                "drbd",
                "-o",
                "image+cd",
                "-s",
                "4G",
                "-B",
                "minmem=256M,maxmem=512M",
                "--no-start",
                "--no-name-check",
                "--no-ip-check",
                INSTANCE,
            ],
        ),
        Step(
            "3.1 Start it from the CD",
            ["gnt-instance", "start", "-H", f"boot_order=cdrom,cdrom_image_path={ISO}", INSTANCE],
        ),
        Step("3.2 Verify the cluster", ["gnt-cluster", "verify"]),
        Step("3.3 Instance information", ["gnt-instance", "info", INSTANCE]),
        Step("3.4 Console", ["gnt-instance", "console", INSTANCE]),
        Step(
            "3.5 Move NIC 0 to br-man",
            [
                "gnt-instance",
                "modify",
                "-f",
                "--net",
                "0:modify,link=br-man",
                "--hotplug",
                INSTANCE,
            ],
        ),
        Step("3.6 Live migration", ["gnt-instance", "migrate", "-f", INSTANCE]),
    ]


def failover_steps() -> list[Step]:
    return [
        Step(
            "3.7 Failover from the dead node",
            ["gnt-instance", "failover", "-f", "--ignore-consistency", INSTANCE],
        ),
        Step("3.7 Instance list", ["gnt-instance", "list", "-o", "name,pnode,snodes,status"]),
    ]


Echo = Callable[[StepResult], None]


def run_step(kit: Testkit, step: Step, timeout: float = 600) -> StepResult:
    proc: subprocess.CompletedProcess[str] = kit.exec(
        step.node, step.argv, input=step.answer, check=False, timeout=timeout
    )
    return StepResult(step, proc.returncode, proc.stdout, proc.stderr)


def primary_of(kit: Testkit, instance: str = INSTANCE) -> str:
    proc = kit.exec(
        "node1", ["gnt-instance", "list", "--no-headers", "-o", "pnode", instance], check=True
    )
    return proc.stdout.strip().split(".")[0]


def run_scenario(kit: Testkit, echo: Echo | None = None) -> list[StepResult]:
    """Run every step on `kit` (already up, cluster not initialised).

    Stops at the first step whose exit code is not allowed. Between migration
    and failover the instance's primary node is crashed with the testkit.
    """
    results: list[StepResult] = []

    def do(step: Step) -> bool:
        res = run_step(kit, step)
        results.append(res)
        if echo:
            echo(res)
        return res.returncode in step.allowed_codes

    for step in setup_steps():
        if not do(step):
            return results
    primary = primary_of(kit)
    crash = StepResult(
        Step(f"3.7 Pull the plug of {primary}", ["corral-testkit", "crash", primary], quiet=False),
        0,
        "",
        "",
    )
    kit.crash(primary)
    crash.extra["crashed"] = primary
    results.append(crash)
    if echo:
        echo(crash)
    master = "node1"
    if primary == "node1":
        # The dead node was the master: a master candidate takes over first.
        master = "node2"
        if not do(
            Step("3.7 Master failover to node2", ["gnt-cluster", "master-failover"], node=master)
        ):
            return results
    for step in failover_steps():
        step.node = master
        if not do(step):
            return results
    return results
