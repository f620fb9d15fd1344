"""The ``tierwise`` command line.

The libraries are ``router_model``, ``training`` and ``serving``.
"""
