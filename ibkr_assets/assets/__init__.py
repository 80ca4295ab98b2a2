"""Software-defined assets: thin wrappers that load, call the domain, record and return."""
