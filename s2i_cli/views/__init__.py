"""What a user sees: `show` (a sample as PNG/GIF), `info` (a store's summary),
`convert_summary` (the table after `s2i convert`) and `progress` (the progress bar).
Nothing here is imported by the encoder or the store."""
