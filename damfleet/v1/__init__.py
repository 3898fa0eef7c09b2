"""Generated protobuf code for proto/damfleet/v1 (see scripts/gen_proto.py)."""
