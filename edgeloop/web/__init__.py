"""`edgeloop web`: read-only pages of the loop for people (docs/web.md).

``queries`` reads the tables and Redis, ``bankroll`` draws a strategy's bankroll from the
backtester, ``pages`` renders server-side HTML, ``server`` serves it behind the token. The
charts are uPlot (MIT, shipped in ``static/``): no network at run time, no build step, and
every page reads fine with JavaScript off (the charts then do not draw; their figures are in
tables beside them).
"""
