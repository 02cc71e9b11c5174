"""The execution engine: queue, runners, output pipeline, live-log bus and cancel signal.

Runs in worker threads (in-process) and imports nothing from NiceGUI or `opscraft.ui`.
"""
