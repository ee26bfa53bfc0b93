"""Demos run by ``dpgen demo NAME``: ``advection`` (the main one) and ``upwind``."""
