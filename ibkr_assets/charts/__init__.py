"""Candlestick charts of bars and indicators, rendered to PNG bytes.

Importing this package is cheap: matplotlib and mplfinance (over a second to import) are
loaded only when a chart is actually drawn.
"""
