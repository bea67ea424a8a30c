"""The benchmark workloads W1-W8; each module lists its rows in WORKLOADS."""
