"""The s2i Zarr v3 store (docs/design.md §3): `schema` (format, arrays, location, create),
`writes` (shards, done records, attributes, finish) and `reads` (open, validate, samples,
streams). The store knows arrays and attributes, not raw formats or torch. Its public names
are here too, so `from s2i_cli import store; store.open_store(...)` reads as before."""
from .header import HeaderError, StoreHeader
from .reads import (MAX_CHUNKS, MAX_SAMPLES, check_layout, check_sample, class_names, image_bytes, open_store, read_skeleton, read_skeletons, split_indices, store_bytes,
                    stream_arrays, valid_indices)
from .schema import (_ZARRS, FORMAT_VERSION, FRAMES_CHUNK, HAVE_ZARRS, MEAN_FRAMES, OLDEST_READABLE, SHARD, Location,
                     StoreError, absolute, check_replaceable, create_store, create_stream_arrays, empty_block, exists,
                     frame_region, is_s2i_folder, is_url, open_group, read_header, root_schema, sample_schema, stored_streams,
                     stream_paths)
from .writes import (compact_skeletons, consolidate, done_shards, finalize, mark_done, record_streams, update_attrs, write_shard,
                     write_streams)
