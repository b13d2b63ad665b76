"""The encoder: skeleton sequences -> S2I images (docs/design.md §2). `skeletons` (definitions,
body parts, column and row maps), `streams` (joint, bone, motion, bone-motion and their
normalisations, calling the kernels), `encoding` (the `Encoding` a store is made with) and
`pixels` (stored pixels back to coordinates). No store, no torch, no drawing."""
