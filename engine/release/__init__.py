"""Policy releases: the guards every served policy passes, semantic diffs of two versions, release
bundles with their Ed25519 approvals."""
