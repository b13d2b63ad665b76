"""Raw-pixel linear probe (scripts/ablate.py's pixel_probe) on every stream of the NW-UCLA store, xview, 3 seeds."""
import importlib.util, json, sys, statistics
import torch
torch.set_num_threads(1)
spec = importlib.util.spec_from_file_location("ablate", "scripts/ablate.py")
ab = importlib.util.module_from_spec(spec); sys.modules["ablate"] = ab; spec.loader.exec_module(ab)
out = {}
for stream in ("joint", "bone", "motion", "bone-motion"):
    r = ab.pixel_probe("exp/ucla80.zarr", seeds=3, epochs=100, stream=stream, protocol="xview", fraction=0.1)
    out[stream] = r
    print(stream, {k: ab.fmt(v["top1"]) for k, v in r.items()}, {k: v["top1"] for k, v in r.items()}, flush=True)
json.dump(out, open("exp/pixels.json", "w"), indent=1)
