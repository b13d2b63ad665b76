"""Evaluation (docs/design.md §4): `evaluate` (the `s2i evaluate` flow), `probe` (frozen
features + linear probe), `finetune`, `metrics`, `results` (results.json and tables) and
`ensemble` (score fusion across streams)."""
