"""Diagnosis: what the machine is and whether gemmconv can run on it. Nothing here imports torch at import time.

    sysfs          reads /sys, /proc, /dev/kfd and ROCm's files under a root into MachineFacts; a captured tree
                   carries what files cannot hold (access rights, groups, torch's view) in gemmconv-capture.json
    families       the table of GPU families: chip, arch, PCI ids, vendor-library status, overrides
    runtime_probe  what torch and the GPU runtime report (runs as a script in a child process)
    child          runs a child process with a timeout (runtime probe, selftest)
    detect         judges every GPU: MachineReport = MachineFacts + findings; vendor_conv_broken()
    selftest       small convolutions in every direction against a float64 reference, in a child process
    doctor         `python -m gemmconv doctor`: the report above, activation state and the selftest
"""
