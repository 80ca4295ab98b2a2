"""Brokers: the paper simulator (default) and IBKR, behind one interface (``base.Broker``)."""
