"""The platform smoke pipeline: a tiny creator/device graph that exercises Delta and the graph engine end to end."""
