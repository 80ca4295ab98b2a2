"""Strategies: what a user describes in one YAML file, and when each strategy runs.

``config`` validates the file (every problem is reported with the file, the strategy and the
field); each ``StrategyConfig`` becomes its own asset group. ``ibkr_assets.schedules`` turns a
strategy into an after-close schedule that asks the exchange calendar whether today's session
has closed.
"""
