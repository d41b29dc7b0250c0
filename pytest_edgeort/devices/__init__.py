"""Devices and the sessions on them: local and SSH devices, the worker client, board locks, placement."""
