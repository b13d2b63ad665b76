"""Pretraining (docs/design.md §4, §7): `config` (PretrainConfig, EvalConfig), `loader` (store ->
batches), `augment` (skeleton-space augmentation), `mae` (the masked autoencoder), `masking`,
`plumbing` (schedules, loss guard, checkpoints), `runs` (run folders) and `pretrain` (the loop)."""
