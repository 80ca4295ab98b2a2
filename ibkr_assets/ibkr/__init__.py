"""The Interactive Brokers boundary: one narrow adapter over ``ib_async.IB``, nothing else.

Everything that talks to IB Gateway / TWS goes through ``ibkr_assets.ibkr.adapter.IbkrAdapter``
so that connection handling, retries and the mapping of IB error codes live in one place and can
be tested against a fake of ``ib_async.IB``.
"""
