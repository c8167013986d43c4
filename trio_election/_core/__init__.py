"""The core: the lock protocol, the engine, leadership, the clock, timing and metering.

It sees locks only through `LockHandle` and imports nothing of Kubernetes access, the
locks over it, the command or the test tools (tests/test_layers.py checks the imports).
"""
