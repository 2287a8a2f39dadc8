"""The read-only web console for risk managers and auditors: decisions with their whole story and a
Replay button, policies, monitoring (rates, scores, reasons, PSI drift, alerts) and reports.
`credo console` serves it (engine.console.app.build_app)."""
