"""What the faces show, read from the store without changing it: views of orders and tickets
and the loading behind them, the screens, reports, search, staff's views, availability, health."""
