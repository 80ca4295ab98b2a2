"""What the IBKR adapter raises when IB Gateway / TWS fails a request.

The messages name the request, IB's error codes and what to check. They are the gateway's
errors, not the market data's: ``ibkr_assets.ibkr.bar_source`` turns them into the errors every
bar source raises, the IBKR broker into ``BrokerError``.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base class: IB Gateway / TWS did not give what was asked."""


class UnknownContractError(GatewayError):
    """IB has no such stock, or several match (the message says which and how to pick one)."""


class GatewayUnavailableError(GatewayError):
    """IB Gateway / TWS could not be reached or answered with an error (down, pacing, ...)."""
