"""The portal's own tables (apiv2 schema) and the one routine that deletes annotations from them."""
