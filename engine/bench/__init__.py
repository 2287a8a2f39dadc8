"""`credo bench`: Credo measured against its floor and against a peer engine, side by side in one run.
One module per section (pipeline, models, rules, peer, grpc, batch, memory); report.py holds the ratios."""
