"""Benchmarks, side by side with Orthanc, run from the repository root as `python -m bench.<name>`
(ingest, retrieve, query, render, web, backup, peers); see bench/README.md."""
