"""A local stand-in for the Redox integration platform (api.redoxengine.com)."""

__version__ = "0.1.0"
