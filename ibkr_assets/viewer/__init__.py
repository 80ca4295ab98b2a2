"""The read-only lineage and decision viewer: data layer, JSON API and ``ibkr-assets serve``."""
