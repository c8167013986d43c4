"""Sharded leadership: S shards spread over the live members of a group, one election each.

`_assign` computes who should lead each shard; `_members` keeps the live members of the
group (membership records renewed like a lease); `_memory` is the in-process group;
`_group` is the face, `open_shards()`.
"""
