"""The contract-test harness: run a client (any language, described by commands) against scenarios.

    client.py        redox-client.yaml: the commands and settings that describe a client
    processes.py     the client's processes, each in its own process group, none left behind
    expectations.py  what a scenario's expectations say about the journal, the handshake and the probe
    runner.py        one scenario: a fresh emulator, the receiver, the send, the pushes, the verdicts
    suites.py        contracts/suites/: named groups of scenarios
    report.py        progress, the summary, JUnit XML and JSON
"""
