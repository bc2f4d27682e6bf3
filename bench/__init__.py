"""`make bench`: benchmarks that write bench/results/<area>.json; see bench/report.py."""
