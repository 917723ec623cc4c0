"""The guarantees: crashes, faults, failover, fuzzing, security, the sandbox, layers, install
(bench/guarantees.py runs them and writes docs/guarantees.md)."""
