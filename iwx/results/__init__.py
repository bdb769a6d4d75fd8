"""What recorded adaptation returns say: pooled units, smoothing and 95% CIs (stats),
Markdown tables (tables), figures (figures), and the lines of a report built from
recorded runs (groups, protocol, curves, reporting, report_text) or of a comparison
(comparison).

Shared by ``iwx.run`` (its summary and adaptation.png), ``iwx.compare``,
``iwx.report`` and the sweeps, so that every tool pools and plots one way."""
