# Startup only: measured by bench/run.py apart from the workloads (not in the means).
