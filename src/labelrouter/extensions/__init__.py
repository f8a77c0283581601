"""Nodes added to the inference graph (docs/extending.md): the protocol, and labelrouter's own two, sender
rules and the important head, installed as `labelrouter.nodes` entry points."""

from labelrouter.extensions.base import PLACES, Extension, load_extensions

__all__ = ["PLACES", "Extension", "load_extensions"]
