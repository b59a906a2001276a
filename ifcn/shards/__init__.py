"""The shard contract shared by `ifcn-prep` (writer), `ifcn-train` and `ifcn-eval` (readers): the sample record,
the shard formats, the manifest, the one reader, per-shard counts checked against the manifest, slices of a shard's
items and the checks of a shard set. It imports neither tool."""
